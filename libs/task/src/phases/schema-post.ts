import type { MigrationContext } from './migration-context';
import type { Phase } from './phase';
import { schemaCounts } from './schema-pre';

/**
 * Schema post-data: indexes, constraints, triggers, rules and policies built on the loaded
 * tables, then the materialized views refreshed. Before: schema-pre done (its dump and result
 * in options.workDir) and the data in (full-data). Records: nothing beyond the phase. Resumable:
 * what exists on the destination already, from a run that stopped midway, is skipped.
 */
export const schemaPostPhase: Phase<MigrationContext> = {
  name: 'schema-post',
  selection: (ctx) => (ctx.spec.migrationTypes.schema ? 'selected' : 'not-selected'),
  async run(ctx) {
    ctx.result.schema.postData = await ctx.schemaMigrator().restorePostData();
    return schemaCounts(ctx.result.schema.postData);
  },
};
