import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteQualified } from '@pgferry/pg';
import {
  heartbeatTable,
  dropPublication,
  publicationName,
  removeDdlCapture,
  dropSlot,
} from '@pgferry/capture';

export interface ReleaseResult {
  /** What was dropped, e.g. `replication slot pgferry_shop`. */
  dropped: string[];
  /** What is still on the source, with why and the statement that drops it. */
  leftBehind: Array<{ object: string; reason: string; fix: string }>;
}

/** The source objects a task creates, named after it (see DESIGN phase 6). */
export function taskSourceObjects(task: string) {
  return {
    slot: `pgferry_${task}`,
    publication: publicationName(task),
    heartbeatTable: quoteQualified(heartbeatTable(task).schema, heartbeatTable(task).table),
  };
}

/**
 * `pgferry release`: drops everything the task left on the source: its replication slot (which
 * otherwise holds WAL forever), its publication, its heartbeat table and its DDL capture (event
 * triggers, function, table; the `pgferry` schema when empty). Idempotent: what is already gone
 * is skipped. Never leaves a slot behind silently: a slot that is in use is reported with the
 * process using it and the statement to run once it stops.
 */
export async function releaseSource(client: Client, task: string): Promise<ReleaseResult> {
  const o = taskSourceObjects(task);
  const result: ReleaseResult = { dropped: [], leftBehind: [] };
  try {
    const slot = await client.query<{ active_pid: number | null; application_name: string | null }>(
      `SELECT s.active_pid, a.application_name FROM pg_replication_slots s
         LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = $1`,
      [o.slot],
    );
    if (slot.rowCount) {
      const { active_pid: pid, application_name: app } = slot.rows[0];
      const dropped = pid === null && (await dropSlot(client, o.slot));
      if (dropped) result.dropped.push(`replication slot ${o.slot}`);
      else
        result.leftBehind.push({
          object: `replication slot ${o.slot}`,
          reason: `in use by process ${pid ?? '(unknown)'}${app ? ` (${app})` : ''}: stop the task's capture first; until the slot is dropped the source keeps every WAL segment from its position`,
          fix: `SELECT pg_drop_replication_slot('${o.slot}');`,
        });
    }
    if (await dropPublication(client, task)) result.dropped.push(`publication ${quoteIdent(o.publication)}`);
    if ((await client.query('SELECT to_regclass($1) IS NOT NULL AS has', [o.heartbeatTable])).rows[0].has) {
      await client.query(`DROP TABLE ${o.heartbeatTable}`);
      result.dropped.push(`table ${o.heartbeatTable}`);
    }
  } catch (err) {
    throw classifyPgError(err, `releasing task ${task} on the source`);
  }
  result.dropped.push(...(await removeDdlCapture(client, task)));
  return result;
}
