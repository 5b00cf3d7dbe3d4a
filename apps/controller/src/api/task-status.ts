import type { Client } from 'pg';
import { AppliedRate, ControlStore, readStreamLag, type StreamLag } from '@pgferry/control';

export interface TaskStatus {
  task: string;
  /** The phase running now, or the last one recorded (failed or done). */
  phase: string | null;
  createdAt: string;
  slot: string | null;
  snapshotLsn: string | null;
  phases: Array<{
    phase: string;
    status: string;
    startedAt: string | null;
    finishedAt: string | null;
    detail: unknown;
  }>;
  fullData: {
    tables: Array<{ table: string; chunks: number; chunksDone: number; rows: number; bytes: number }>;
    chunks: number;
    chunksDone: number;
    rows: number;
    bytes: number;
  };
  applied: Array<{ topic: string; partition: number; nextOffset: string; updatedAt: string }>;
  /** Incremental tasks: positions, lag and rate of the change stream. */
  stream: (StreamLag & { recordsPerSecond: number; cutoverRequestedAt: string | null }) | null;
}

/** Per task, for records/s between two status reads. */
const rates = new Map<string, AppliedRate>();

/**
 * A task's state as recorded in the destination's pgferry schema: phases, snapshot chunk
 * progress, applied offsets. Read-only; works for running and finished tasks alike.
 * Returns null when the task (or the control schema) does not exist.
 */
export async function readTaskStatus(client: Client, task: string): Promise<TaskStatus | null> {
  const exists = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!exists.rows[0].has) return null;
  const { rows } = await client.query(
    `SELECT task, created_at, slot_name, consistent_lsn::text AS lsn, spec, cutover_requested_at
       FROM pgferry.tasks WHERE task = $1`,
    [task],
  );
  if (!rows[0]) return null;
  const store = new ControlStore(client, task);
  const phases = await store.phases();
  const chunks = await store.chunkProgress();
  const offsets = await client.query(
    `SELECT topic, partition, next_offset, updated_at FROM pgferry.offsets WHERE consumer_group = $1 ORDER BY topic, partition`,
    [`pgferry-${task}-applier`],
  );
  let stream: TaskStatus['stream'] = null;
  if (rows[0].spec?.migrationTypes?.incremental) {
    const lag = await readStreamLag(client, task, Number(rows[0].spec?.options?.lagBoundSeconds ?? 5));
    const rate = rates.get(task) ?? new AppliedRate();
    rates.set(task, rate);
    const recordsPerSecond = rate.update(lag.appliedRecords);
    stream = {
      ...lag,
      recordsPerSecond,
      cutoverRequestedAt: rows[0].cutover_requested_at?.toISOString() ?? null,
    };
  }
  const current =
    phases.find((p) => p.status === 'running') ??
    [...phases].sort((a, b) => (a.startedAt?.getTime() ?? 0) - (b.startedAt?.getTime() ?? 0)).pop();
  return {
    task,
    phase: current?.phase ?? null,
    createdAt: rows[0].created_at.toISOString(),
    slot: rows[0].slot_name,
    snapshotLsn: rows[0].lsn,
    phases: phases.map((p) => ({
      phase: p.phase,
      status: p.status,
      startedAt: p.startedAt?.toISOString() ?? null,
      finishedAt: p.finishedAt?.toISOString() ?? null,
      detail: p.detail,
    })),
    fullData: {
      tables: chunks.map((c) => ({
        table: c.sourceTable,
        chunks: c.chunks,
        chunksDone: c.done,
        rows: c.rows,
        bytes: c.bytes,
      })),
      chunks: chunks.reduce((a, c) => a + c.chunks, 0),
      chunksDone: chunks.reduce((a, c) => a + c.done, 0),
      rows: chunks.reduce((a, c) => a + c.rows, 0),
      bytes: chunks.reduce((a, c) => a + c.bytes, 0),
    },
    applied: offsets.rows.map((r) => ({
      topic: r.topic,
      partition: r.partition,
      nextOffset: String(r.next_offset),
      updatedAt: r.updated_at.toISOString(),
    })),
    stream,
  };
}

export async function listTasks(client: Client): Promise<string[]> {
  const exists = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!exists.rows[0].has) return [];
  return (await client.query(`SELECT task FROM pgferry.tasks ORDER BY created_at`)).rows.map(
    (r) => r.task as string,
  );
}
