import type { SchemaStepResult } from '@pgferry/schema';
import type { MigrationContext } from './migration-context';
import type { Phase } from './phase';

/** "3 tables, 2 types": what a schema step created, by object kind. */
export function schemaCounts(step: SchemaStepResult): string {
  return Object.entries(step.counts)
    .map(([k, n]) => `${n} ${k.toLowerCase()}`)
    .join(', ');
}

/**
 * Schema pre-data: pg_dump of the selected objects' schema, then its pre-data part (schemas,
 * types, tables without their indexes and constraints) restored on the destination. Before:
 * nothing (the first phase). Records: the dump, its plan and the step's result in
 * options.workDir, which the schema-post phase reads. Resumable: the pre-data is restored in
 * one transaction, so a run that failed left none of it and the phase runs whole again.
 */
export const schemaPrePhase: Phase<MigrationContext> = {
  name: 'schema-pre',
  selection: (ctx) => (ctx.spec.migrationTypes.schema ? 'selected' : 'not-selected'),
  async run(ctx) {
    const migrator = ctx.schemaMigrator();
    await migrator.dump();
    ctx.result.schema.preData = await migrator.restorePreData();
    return schemaCounts(ctx.result.schema.preData);
  },
};
