import type { Client } from 'pg';
import { listTables, quoteQualified, type SelectedTable } from '@pgferry/pg';
import { readStreamTables } from '@pgferry/control';
import type { MigrationContext } from './migration-context';
import { describeSequences, syncSequences } from '../pg-sequence-sync';
import type { Phase } from './phase';

/**
 * Cutover (incremental tasks): the source has stopped taking writes (the user's side of
 * cutover) and the destination holds every change (the incremental phase is done). Sequences
 * follow, then the tables are compared as they are now, as the stream left them: with the
 * tables it gained, without those dropped on the way. Records: the outcome as the phase's
 * detail. Resumable: setting a sequence again to the source's value and comparing again
 * change nothing.
 */
export const cutoverPhase: Phase<MigrationContext> = {
  name: 'cutover',
  selection: (ctx) => (ctx.spec.migrationTypes.incremental ? 'selected' : 'not-applicable'),
  async run(ctx) {
    const { tables, gone } = await cutoverTables(ctx.source, ctx.control, ctx.spec.name, ctx.tables);
    const seq = await syncSequences(ctx.source, ctx.control, ctx.spec.objects, tables);
    ctx.result.sequences = seq;
    const parts = [describeSequences(seq)];
    if (gone.length) parts.push(`not compared, no longer on the source: ${gone.join(', ')}`);
    if (ctx.options.verify) {
      ctx.result.verify = await ctx.options.verify(ctx.source, ctx.control, tables, null);
      parts.push(ctx.result.verify);
    }
    return parts.join('; ');
  },
};

/**
 * The tables to compare at cutover: `tables` that are still on the source (a table dropped or
 * renamed mid-stream is gone, and the statement was carried to the destination), and the tables
 * the stream gained after the task started (created on the source in a schema the task takes
 * whole, or renamed there: pgferry.stream_tables), as the source describes them now; those have
 * the same names on the destination (a schema with renames gains none).
 */
async function cutoverTables(
  source: Client,
  control: Client,
  task: string,
  tables: SelectedTable[],
): Promise<{ tables: SelectedTable[]; gone: string[] }> {
  const name = (t: { schema: string; table: string }) => `${t.schema}\u0000${t.table}`;
  const now = new Map(
    (await listTables(source, 'listing the source tables at cutover')).map((t) => [name(t), t]),
  );
  const kept = tables.filter((t) => now.has(name(t)));
  const have = new Set(kept.map(name));
  const gained = (await readStreamTables(control, task))
    .map((t) => now.get(name(t)))
    .filter((t): t is NonNullable<typeof t> => t !== undefined && !have.has(name(t)))
    .map((t) => ({ ...t, targetSchema: t.schema, targetTable: t.table }));
  return {
    tables: [...kept, ...gained],
    gone: tables.filter((t) => !now.has(name(t))).map((t) => quoteQualified(t.schema, t.table)),
  };
}
