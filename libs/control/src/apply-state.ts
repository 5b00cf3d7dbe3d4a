import { quoteLiteral } from '@pgferry/pg';
import type { Queryable } from './control-schema';

/*
 * What the appliers keep beside their offsets, each written inside the destination transaction
 * it belongs to: the last truncate applied per table (pgferry.truncates), the schema changes
 * run (pgferry.ddl_applied), and whether a snapshot chunk was sent again (pgferry.chunks).
 */

/**
 * The LSN of the last truncate `group` applied to the table, its row locked: FOR SHARE for a
 * batch without a truncate, FOR UPDATE (`exclusive`) for one with, so a truncate and older
 * changes from another partition never commit in the wrong order. One round trip once the
 * table has its row (every batch after its first).
 */
export async function lockTruncateLsn(
  client: Queryable,
  group: string,
  schema: string,
  table: string,
  exclusive: boolean,
): Promise<bigint> {
  const params = [group, schema, table];
  const read = () =>
    client.query<{ lsn: string }>(
      `SELECT lsn::text AS lsn FROM pgferry.truncates WHERE consumer_group = $1 AND schema_name = $2 AND table_name = $3 FOR ${exclusive ? 'UPDATE' : 'SHARE'}`,
      params,
    );
  let { rows } = await read();
  if (!rows.length) {
    await client.query(
      `INSERT INTO pgferry.truncates (consumer_group, schema_name, table_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
      params,
    );
    ({ rows } = await read());
  }
  return BigInt(rows[0].lsn);
}

/** Records a truncate at `lsn` as applied (in the transaction that applied it, its row locked). */
export async function storeTruncateLsn(
  client: Queryable,
  group: string,
  schema: string,
  table: string,
  lsn: bigint,
): Promise<void> {
  await client.query(
    `UPDATE pgferry.truncates SET lsn = $4 WHERE consumer_group = $1 AND schema_name = $2 AND table_name = $3`,
    [group, schema, table, lsn.toString()],
  );
}

/**
 * Claims schema change `ddlId` of the task for this transaction: true when it was not applied
 * before (the caller runs it and commits), false when an earlier run did.
 */
export async function claimDdl(
  client: Queryable,
  task: string,
  ddlId: string,
  command: string,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `INSERT INTO pgferry.ddl_applied (task, ddl_id, command) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    [task, ddlId, command],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * The statement a user runs on the destination to record schema change `ddlId` of the task as
 * applied by hand, so that claimDdl passes it over when the task runs again.
 */
export function ddlAppliedByHandSql(task: string, ddlId: string): string {
  return `INSERT INTO pgferry.ddl_applied (task, ddl_id, command) VALUES (${quoteLiteral(task)}, ${BigInt(ddlId)}, 'applied by hand')`;
}

/** Whether a snapshot chunk of `sourceTable` was sent more than once (a capture restarted). */
export async function chunkSentAgain(client: Queryable, task: string, sourceTable: string): Promise<boolean> {
  const { rows } = await client.query(
    'SELECT EXISTS (SELECT FROM pgferry.chunks WHERE task = $1 AND source_table = $2 AND attempt > 1) AS resent',
    [task, sourceTable],
  );
  return rows[0].resent as boolean;
}
