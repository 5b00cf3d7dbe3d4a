import type { Client } from 'pg';
import {
  AppliedRate,
  applierGroup,
  ControlStore,
  listTaskNames,
  readGroupOffsets,
  readStreamLag,
  readTaskRow,
  readThrottleStatus,
  type StreamLag,
  type ThrottleStatus,
} from '@pgferry/control';

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
  /** The limits in force and, per stage, the rates its processes reported in the last 5 s. */
  throttle: ThrottleStatus | null;
}

/** Per task, for records/s between two status reads. */
const rates = new Map<string, AppliedRate>();

/**
 * A task's state as recorded in the destination's pgferry schema: phases, snapshot chunk
 * progress, applied offsets. Read-only; works for running and finished tasks alike.
 * Returns null when the task (or the control schema) does not exist.
 */
export async function readTaskStatus(client: Client, task: string): Promise<TaskStatus | null> {
  const row = await readTaskRow(client, task);
  if (!row) return null;
  const store = new ControlStore(client, task);
  const phases = await store.phases();
  const chunks = await store.chunkProgress();
  const offsets = await readGroupOffsets(client, applierGroup(task));
  let stream: TaskStatus['stream'] = null;
  if (row.spec?.migrationTypes?.incremental) {
    const lag = await readStreamLag(client, task, Number(row.spec?.options?.lagBoundSeconds ?? 5));
    const rate = rates.get(task) ?? new AppliedRate();
    rates.set(task, rate);
    const recordsPerSecond = rate.update(lag.appliedRecords);
    stream = {
      ...lag,
      recordsPerSecond,
      cutoverRequestedAt: row.cutover_requested_at?.toISOString() ?? null,
    };
  }
  const current =
    phases.find((p) => p.status === 'running') ??
    [...phases].sort((a, b) => (a.startedAt?.getTime() ?? 0) - (b.startedAt?.getTime() ?? 0)).pop();
  return {
    task,
    phase: current?.phase ?? null,
    createdAt: row.created_at.toISOString(),
    slot: row.slot_name,
    snapshotLsn: row.lsn,
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
    applied: offsets.map((o) => ({
      topic: o.topic,
      partition: o.partition,
      nextOffset: String(o.nextOffset),
      updatedAt: o.updatedAt.toISOString(),
    })),
    stream,
    throttle: await readThrottleStatus(client, task),
  };
}

export function listTasks(client: Client): Promise<string[]> {
  return listTaskNames(client);
}
