import type { Client, PoolClient } from 'pg';

type Queryable = Pick<Client | PoolClient, 'query'>;

/**
 * True when the destination's control schema already knows the task (an earlier run registered
 * it): the run resumes it. Read-only; false on a destination without the control schema.
 */
export async function taskRegistered(client: Queryable, task: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!rows[0].has) return false;
  return (await client.query(`SELECT 1 FROM pgferry.tasks WHERE task = $1`, [task])).rows.length > 0;
}

/** A task's row in pgferry.tasks (its spec as recorded), or null without it or the control schema. */
export async function readTaskRow(
  client: Queryable,
  task: string,
): Promise<{
  task: string;
  created_at: Date;
  slot_name: string | null;
  lsn: string | null;
  /** The spec as the task recorded it: the parts status readers look at. */
  spec: { migrationTypes?: { incremental?: boolean }; options?: { lagBoundSeconds?: number } } | null;
  cutover_requested_at: Date | null;
} | null> {
  const { rows: has } = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!has[0].has) return null;
  const { rows } = await client.query(
    `SELECT task, created_at, slot_name, consistent_lsn::text AS lsn, spec, cutover_requested_at
       FROM pgferry.tasks WHERE task = $1`,
    [task],
  );
  return rows[0] ?? null;
}

/** The tasks the destination's control schema knows, oldest first; none without the schema. */
export async function listTaskNames(client: Queryable): Promise<string[]> {
  const { rows: has } = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!has[0].has) return [];
  return (await client.query(`SELECT task FROM pgferry.tasks ORDER BY created_at`)).rows.map(
    (r) => r.task as string,
  );
}
