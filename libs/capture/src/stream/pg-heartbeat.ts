import type { Client } from 'pg';
import type { Logger } from '@pgferry/core';
import { describeError } from '@pgferry/core';
import { classifyPgError, connect, quoteIdent, quoteQualified, type Endpoint } from '@pgferry/pg';
import { DDL_SCHEMA } from '../ddl/pg-ddl-capture';
import type { ChangeEvent } from '../change-event';

/**
 * Heartbeat: a one-row table `pgferry.heartbeat_<task>` on the source, updated on an interval and
 * published with the task's tables. Each beat is a small committed transaction in the task's
 * database, so
 * - an idle slot still advances: the beat reaches the capture, is stored, its commit confirmed,
 *   and the server can recycle WAL written by other databases in the meantime;
 * - lag is measured: the capture's clock minus the beat's commit time when it arrives.
 * A table rather than pg_logical_emit_message because pgoutput forwards messages only from
 * PostgreSQL 14 (option `messages`), release already drops this table, and consumers of the
 * `<prefix>.heartbeat` topic see ordinary rows.
 */
export function heartbeatTable(task: string): { schema: string; table: string } {
  return { schema: DDL_SCHEMA, table: `heartbeat_${task}` };
}

export function isHeartbeatTable(task: string, schema: string, table: string): boolean {
  const h = heartbeatTable(task);
  return schema === h.schema && table === h.table;
}

function qualified(task: string): string {
  const h = heartbeatTable(task);
  return quoteQualified(h.schema, h.table);
}

/** Creates the schema and table if missing. Idempotent. Run before `ensurePublication`. */
export async function ensureHeartbeatTable(client: Client, task: string): Promise<void> {
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(DDL_SCHEMA)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${qualified(task)} (id int PRIMARY KEY, at timestamptz NOT NULL)`,
    );
  } catch (err) {
    throw classifyPgError(err, `creating heartbeat table ${qualified(task)} on the source`);
  }
}

/** Writes one beat (its own transaction) and returns the source's time of it. */
export async function beat(client: Client, task: string): Promise<Date> {
  try {
    const { rows } = await client.query<{ at: Date }>(
      `INSERT INTO ${qualified(task)} (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = excluded.at RETURNING at`,
    );
    return rows[0].at;
  } catch (err) {
    throw classifyPgError(err, `writing heartbeat ${qualified(task)} on the source`);
  }
}

export interface HeartbeatWriter {
  /** Stops beating and closes the connection. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Beats every `intervalMs` on a connection of its own until stopped. A failed beat is logged and
 * retried at the next tick on a new connection: a missing beat only delays slot advance, and the
 * stream reader reports a lost source itself.
 */
export function startHeartbeat(
  ep: Endpoint,
  task: string,
  options: { intervalMs?: number; logger?: Logger } = {},
): HeartbeatWriter {
  let client: Client | null = null;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const tick = async () => {
    try {
      client ??= await connect(ep, 'source', { applicationName: `pgferry ${task} heartbeat` });
      await beat(client, task);
    } catch (err) {
      options.logger?.warn(
        { task, err: describeError(err) },
        'heartbeat failed; retrying at the next interval',
      );
      await client?.end().catch(() => undefined);
      client = null;
    }
  };
  let busy = false;
  const schedule = () => {
    // A beat slower than the interval is not queued behind: the next tick is skipped.
    if (stopped || busy) return;
    busy = true;
    running = tick().finally(() => (busy = false));
  };
  const timer = setInterval(schedule, options.intervalMs ?? 10_000);
  schedule();
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await running;
      await client?.end().catch(() => undefined);
      client = null;
    },
  };
}

/**
 * Lag in ms shown by a commit event that carries a heartbeat of `task`: the capture's clock now
 * minus the source's commit time (so it includes any clock difference between the two
 * machines). Null for any other event.
 */
export function heartbeatLagMs(event: ChangeEvent, task: string, now: number = Date.now()): number | null {
  if (event.kind !== 'commit' || !event.counts.some((c) => isHeartbeatTable(task, c.schema, c.table)))
    return null;
  return Math.max(0, now - event.commitTime.getTime());
}
