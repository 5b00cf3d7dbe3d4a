import type { MigrationContext } from './migration-context';
import type { Phase } from './phase';

/**
 * Verify (a task without incremental migration, when given options.verify): every table
 * compared on both servers. Before: the data and the post-data are in. It reads the source under
 * the snapshot the destination was loaded from when this run exported it (still alive: the
 * comparison is against exactly what was copied, whatever the source took since), else as it is
 * now. Records: the report as the phase's detail. Resumable: read-only, run again whole. An
 * incremental task is verified at cutover, once its destination has caught up.
 */
export const verifyPhase: Phase<MigrationContext> = {
  name: 'verify',
  selection: (ctx) =>
    ctx.options.verify && !ctx.spec.migrationTypes.incremental ? 'selected' : 'not-applicable',
  async run(ctx) {
    const snapshot = ctx.exported?.snapshotName ?? null;
    ctx.result.verify = await ctx.options.verify!(ctx.source, ctx.control, ctx.tables, snapshot);
    return ctx.result.verify;
  },
};
