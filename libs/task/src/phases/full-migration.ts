import { MigrationContext } from './migration-context';
import type { FullMigrationOptions, FullMigrationResult } from './migration-options';
import { runPhases } from './phase';
import { TASK_PHASES } from './phase-table';

export type { FullMigrationOptions, FullMigrationResult } from './migration-options';

/**
 * Runs a task's phases (phases/phase-table.ts: schema pre-data -> full data through Kafka ->
 * schema post-data -> verify, or -> incremental -> cutover), each recorded in pgferry.phases on
 * the destination and skipped when a previous run finished it, so a restarted migration resumes
 * instead of starting over. The replication slot stays when incremental migration follows; a
 * full-only task drops it at the end.
 */
export async function runFullMigration(opts: FullMigrationOptions): Promise<FullMigrationResult> {
  const ctx = await MigrationContext.open(opts);
  try {
    ctx.emit({
      kind: 'plan',
      tables: ctx.tables.map((t) => ({
        name: `${t.schema}.${t.table}`,
        estimatedRows: t.estimatedRows,
        bytes: t.bytes,
      })),
    });
    await runPhases(TASK_PHASES, ctx);
    return ctx.result;
  } finally {
    await ctx.close();
  }
}
