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
