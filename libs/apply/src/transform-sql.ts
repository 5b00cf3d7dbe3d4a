import { createHash } from 'node:crypto';
import { DataError } from '@pgferry/core';
import { quoteIdent, sourceColumnsSql, type TransformPlan } from '@pgferry/pg';

/**
 * The statements that write staged source rows into a transformed table. Rows are staged in
 * the source's shape (a temporary table of the source's column types) and written through the
 * plan's view in one statement, so the server evaluates the expressions, masks and filter over
 * the whole batch: the bulk path, with no row-by-row work in Node.
 */

/** The name of a session-local staging table of `columns` of the source's shape, for `role`. */
export function stageName(target: string, role: string, columns: readonly string[]): string {
  const h = createHash('sha1')
    .update(`${target}\u0000${columns.join('\u0000')}`)
    .digest('hex')
    .slice(0, 16);
  return quoteIdent(`pgferry_t${role}_${h}`);
}

/** Creates (if this session has not) a staging table of source `columns`, emptied at commit. */
export function createStageSql(plan: TransformPlan, stage: string, columns?: readonly string[]): string {
  return `CREATE TEMP TABLE IF NOT EXISTS ${stage} (${sourceColumnsSql(plan, columns)}) ON COMMIT DELETE ROWS`;
}

const list = (names: readonly string[]) => names.map(quoteIdent).join(', ');

/**
 * Upserts the staged rows that pass the filter, through the view. With `latestPerKey`, a key
 * staged twice (a snapshot chunk sent again) is written once, from its last staged row.
 */
export function upsertSql(plan: TransformPlan, target: string, stage: string, latestPerKey: boolean): string {
  const cols = plan.output.map((o) => o.name);
  const exprs = plan.output.map((o) => `${o.expr} AS ${quoteIdent(o.name)}`).join(', ');
  const where = plan.filter ? ` WHERE COALESCE(${plan.filter}, false)` : '';
  const key = list(plan.sourceKey);
  const select = latestPerKey
    ? `SELECT DISTINCT ON (${key}) ${exprs} FROM ${stage}${where} ORDER BY ${key}, ctid DESC`
    : `SELECT ${exprs} FROM ${stage}${where}`;
  const set = cols.filter((c) => !plan.key.includes(c));
  const conflict = `ON CONFLICT (${list(plan.key)}) DO ${set.length ? `UPDATE SET ${set.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}` : 'NOTHING'}`;
  return `INSERT INTO ${target} (${list(cols)}) OVERRIDING SYSTEM VALUE ${select} ${conflict}`;
}

/**
 * Deletes the destination rows of the staged rows that fail the filter: an UPDATE that moved a
 * row out of the view. Null without a filter. The filter is evaluated in a subquery over the
 * stage alone, so its column names cannot meet the destination's.
 */
export function deleteFilteredSql(plan: TransformPlan, target: string, stage: string): string | null {
  if (!plan.filter) return null;
  const keys = plan.sourceKey.map((k, i) => `${quoteIdent(k)} AS pgferry_k${i}`).join(', ');
  const match = plan.key.map((k, i) => `d.${quoteIdent(k)} = s.pgferry_k${i}`).join(' AND ');
  return `DELETE FROM ${target} AS d USING (SELECT ${keys} FROM ${stage} WHERE NOT COALESCE(${plan.filter}, false)) AS s WHERE ${match}`;
}

/** Deletes the destination rows of the staged source keys. */
export function deleteKeysSql(plan: TransformPlan, target: string, stage: string): string {
  const match = plan.key
    .map((k, i) => `d.${quoteIdent(k)} = s.${quoteIdent(plan.sourceKey[i])}`)
    .join(' AND ');
  return `DELETE FROM ${target} AS d USING ${stage} AS s WHERE ${match}`;
}

/**
 * Refuses records with columns the transform was planned without (the source table changed
 * since the task started): the view does not say where they go. A DataError naming them.
 */
export function requirePlannedColumns(plan: TransformPlan, columns: readonly string[]): void {
  const known = new Set(plan.source.map((c) => c.name));
  const unknown = columns.filter((c) => !known.has(c));
  if (unknown.length)
    throw new DataError(
      `records of ${plan.table} have column(s) ${unknown.join(', ')}, which its transform was planned without (the source table changed since the task started): make sure the destination table has them (the replayed schema change adds them), name them in the transform if they need a treatment, and run migrate again: it plans the transform anew from the source's columns`,
    );
}
