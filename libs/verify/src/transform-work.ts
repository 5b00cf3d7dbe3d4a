import type { Client } from 'pg';
import { quoteIdent, quoteQualified, viewSql, type SelectedTable, type TransformPlan } from '@pgferry/pg';
import { COLUMNS_SQL, relationSql } from './verify-plan';
import type { TableVerdict } from './verify-report';
import { operationsSkip, RangeFeed, type TableWork } from './table-work';

/**
 * A transformed table's comparison: the source side is its view (`SELECT <the transform's
 * expressions> FROM t WHERE <filter>`, as a subquery), the destination side the table; both are
 * compared by the destination's columns and ranges of the destination's key, every column by
 * its text (the view's and the table's types may differ: a masked column is text). Returns the
 * verdict alone when the destination lacks the table or a column of the view, and, with a note,
 * for a transform with a module (a JavaScript function the source cannot evaluate).
 */
export async function planTransformedTable(
  destination: Client,
  t: SelectedTable,
  plan: TransformPlan,
  atSnapshot?: boolean,
): Promise<{ verdict: TableVerdict; work?: TableWork }> {
  const table = quoteQualified(t.schema, t.table);
  const target = quoteQualified(t.targetSchema, t.targetTable);
  const verdict: TableVerdict = {
    table,
    target,
    sourceRows: 0,
    destinationRows: 0,
    chunks: 0,
    key: plan.key,
    mismatches: [],
    notes: [`compared through transforms ${plan.table}`],
  };
  const skipped = operationsSkip(t, atSnapshot);
  if (skipped) {
    verdict.notes = [];
    verdict.skipped = skipped;
    return { verdict };
  }
  if (plan.module) {
    // Not a problem of the table: the report says it, and the verify passes on the others.
    verdict.notes = [];
    verdict.skipped = `not compared: transforms ${plan.table} has a module, whose view only the applier computes (the source cannot); compare the table with a query of your own`;
    return { verdict };
  }
  const kind = await destination.query('SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)', [
    target,
  ]);
  if (!kind.rows.length) {
    verdict.problem = `${target} does not exist on the destination`;
    return { verdict };
  }
  const dstCols = (await destination.query(COLUMNS_SQL, [target])).rows as Array<{
    name: string;
    padded: boolean;
  }>;
  const onDestination = new Map(dstCols.map((c) => [c.name, c]));
  const absent = plan.output.filter((o) => !onDestination.has(o.name)).map((o) => quoteIdent(o.name));
  if (absent.length) {
    verdict.problem = `${target} has no column ${absent.join(', ')} on the destination (transforms ${plan.table})`;
    return { verdict };
  }
  // The rows the snapshot and the stream carry: the listed columns (plan.source) through the
  // row filter (objects.include[].where), then the transform's view over them.
  const relation = relationSql(t.schema, t.table, t.partitioned);
  const carried =
    t.where !== undefined || t.columns
      ? `(SELECT ${plan.source.map((c) => quoteIdent(c.name)).join(', ')} FROM ${relation}${t.where !== undefined ? ` WHERE (${t.where})` : ''}) AS ${quoteIdent(t.table)}`
      : relation;
  const view = viewSql(plan, carried);
  const columns = plan.output.map((o) => ({
    name: o.name,
    padded: onDestination.get(o.name)!.padded,
    typed: null,
  }));
  return {
    verdict,
    work: {
      verdict,
      src: `(${view}) AS pgferry_view`,
      dst: relationSql(t.targetSchema, t.targetTable, kind.rows[0].relkind === 'p'),
      table,
      integerKey: false,
      srcColumns: columns,
      dstColumns: columns,
      ranges: new RangeFeed(),
      digests: [],
      settled: 0,
      found: [],
    },
  };
}
