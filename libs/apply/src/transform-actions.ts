import type { Client } from 'pg';
import { DataError } from '@pgferry/core';
import { copyChunks, quoteQualified, type TransformPlan } from '@pgferry/pg';
import { copyInto } from './pg-apply-session';
import type { KeyAction } from './change-plan';
import type { TargetTable } from './pg-row-applier';
import { deleteFilteredSql, deleteKeysSql, requirePlannedColumns, upsertSql } from './transform-sql';

/** Opens (or empties) a staging table of source `columns` for `role` in the open transaction. */
export type StageOpener = (role: string, columns: readonly string[]) => Promise<string>;

/**
 * A transformed table's reduced changes (`actions` by source key, rows in `t.columns`, the
 * record's source columns) applied through its view, inside the caller's transaction: deletes
 * by key (a delete of a row the filter kept out finds nothing: a no-op), then the upserts
 * staged in the source's shape, those that fail the filter deleting their key (an UPDATE that
 * moved a row out of the view) and the others upserted (one that moved it in inserts it).
 * A row whose TOASTed column the source did not send cannot be put through the view (its value
 * is nowhere): a DataError naming the table and the fix.
 */
export async function applyTransformedActions(
  client: Client,
  t: TargetTable,
  plan: TransformPlan,
  actions: ReadonlyMap<string, KeyAction>,
  stage: StageOpener,
): Promise<{ upserted: number; deleted: number }> {
  requirePlannedColumns(plan, t.columns);
  const target = quoteQualified(t.schema, t.table);
  const deletes: Array<Array<string | null>> = [];
  const rows: Array<Array<string | null>> = [];
  for (const a of actions.values()) {
    if (a.kind === 'delete') deletes.push(a.key);
    else if (a.kind === 'upsert' && a.unchanged.size === 0) rows.push(a.values);
    else
      throw new DataError(
        `${target} is transformed (transforms ${plan.table}) and the source did not send the unchanged TOAST column(s) ${[...a.unchanged].join(', ')} of an updated row, so its view cannot be computed: run ALTER TABLE ${plan.table
          .split('.')
          .map((p) => `"${p.replace(/"/g, '""')}"`)
          .join('.')} REPLICA IDENTITY FULL on the source`,
      );
  }
  let deleted = 0;
  if (deletes.length) {
    const s = await stage('delkeys', plan.sourceKey);
    await copyInto(client, s, plan.sourceKey, copyChunks(deletes));
    deleted += (await client.query(deleteKeysSql(plan, target, s))).rowCount ?? 0;
  }
  let upserted = 0;
  if (rows.length) {
    const s = await stage('upsert', t.columns);
    await copyInto(client, s, t.columns, copyChunks(rows));
    const out = deleteFilteredSql(plan, target, s);
    if (out) deleted += (await client.query(out)).rowCount ?? 0;
    upserted += (await client.query(upsertSql(plan, target, s, false))).rowCount ?? 0;
  }
  return { upserted, deleted };
}
