import { redactTaskSpec, type TaskSpec } from '@pgferry/core';
import type { Queryable } from './control-schema';
import { checkRun, type RunIdentity, type SeenIdentity } from './runs';

export type PhaseName =
  'precheck' | 'schema-pre' | 'full-data' | 'schema-post' | 'verify' | 'incremental' | 'cutover';
export type PhaseStatus = 'pending' | 'running' | 'done' | 'failed';

export interface TaskRecord {
  task: string;
  slotName: string | null;
  consistentLsn: string | null;
  snapshotName: string | null;
}

/**
 * One task's rows in the control schema: its registration and replication slot, the state of
 * each phase, and the snapshot chunk plan with each chunk's progress.
 */
export class ControlStore {
  constructor(
    /** The destination connection the store's statements run on. */
    readonly client: Queryable,
    readonly task: string,
  ) {}

  /** The task's run, checked against what this process sees (see checkRun). */
  checkRun(seen: SeenIdentity): Promise<RunIdentity> {
    return checkRun(this.client, this.task, seen);
  }

  /**
   * Records the task with its spec redacted (redactTaskSpec: no password, no inline key): the
   * destination becomes production after the cutover, and nothing reads a password back from
   * here. A resumed task's row is replaced, which also scrubs a row an older pgferry wrote whole.
   */
  async registerTask(spec: Partial<TaskSpec>): Promise<void> {
    await this.client.query(
      `INSERT INTO pgferry.tasks (task, spec) VALUES ($1, $2) ON CONFLICT (task) DO UPDATE SET spec = EXCLUDED.spec`,
      [this.task, JSON.stringify(redactTaskSpec(spec))],
    );
  }

  async getTask(): Promise<TaskRecord | null> {
    const { rows } = await this.client.query(
      `SELECT task, slot_name, consistent_lsn::text AS lsn, snapshot_name FROM pgferry.tasks WHERE task = $1`,
      [this.task],
    );
    return rows[0]
      ? {
          task: rows[0].task,
          slotName: rows[0].slot_name,
          consistentLsn: rows[0].lsn,
          snapshotName: rows[0].snapshot_name,
        }
      : null;
  }

  async setSlot(slotName: string, consistentLsn: string, snapshotName: string | null): Promise<void> {
    await this.client.query(
      `UPDATE pgferry.tasks SET slot_name = $2, consistent_lsn = $3::pg_lsn, snapshot_name = $4 WHERE task = $1`,
      [this.task, slotName, consistentLsn, snapshotName],
    );
  }

  async phaseStatus(phase: PhaseName): Promise<PhaseStatus> {
    const { rows } = await this.client.query(
      `SELECT status FROM pgferry.phases WHERE task = $1 AND phase = $2`,
      [this.task, phase],
    );
    return (rows[0]?.status as PhaseStatus) ?? 'pending';
  }

  async phases(): Promise<
    Array<{
      phase: PhaseName;
      status: PhaseStatus;
      startedAt: Date | null;
      finishedAt: Date | null;
      detail: unknown;
    }>
  > {
    const { rows } = await this.client.query(
      `SELECT phase, status, started_at, finished_at, detail FROM pgferry.phases WHERE task = $1 ORDER BY started_at NULLS LAST`,
      [this.task],
    );
    return rows.map((r) => ({
      phase: r.phase,
      status: r.status,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      detail: r.detail,
    }));
  }

  async setPhase(phase: PhaseName, status: PhaseStatus, detail: unknown = {}): Promise<void> {
    await this.client.query(
      `INSERT INTO pgferry.phases (task, phase, status, started_at, finished_at, detail)
       VALUES ($1, $2, $3, now(), CASE WHEN $3 IN ('done', 'failed') THEN now() END, $4)
       ON CONFLICT (task, phase) DO UPDATE SET status = EXCLUDED.status, detail = EXCLUDED.detail,
         started_at = CASE WHEN EXCLUDED.status = 'running' THEN now() ELSE pgferry.phases.started_at END,
         finished_at = CASE WHEN EXCLUDED.status IN ('done', 'failed') THEN now() END`,
      [this.task, phase, status, JSON.stringify(detail)],
    );
  }

  /** True once a chunk plan was stored: a restarted task reuses it instead of planning anew. */
  async hasPlan(): Promise<boolean> {
    const { rows } = await this.client.query(`SELECT 1 FROM pgferry.chunks WHERE task = $1 LIMIT 1`, [
      this.task,
    ]);
    return rows.length > 0;
  }

  /** Stores the chunk plan (idempotent: existing chunks keep their progress). */
  async storePlan<P>(chunks: Array<{ id: string; sourceTable: string; plan: P }>): Promise<void> {
    if (!chunks.length) return;
    await this.client.query(
      `INSERT INTO pgferry.chunks (task, chunk_id, source_table, plan)
       SELECT $1, c.id, c.tbl, c.plan FROM unnest($2::text[], $3::text[], $4::jsonb[]) AS c(id, tbl, plan)
       ON CONFLICT (task, chunk_id) DO NOTHING`,
      [
        this.task,
        chunks.map((c) => c.id),
        chunks.map((c) => c.sourceTable),
        chunks.map((c) => JSON.stringify(c.plan)),
      ],
    );
  }

  /** The stored chunks that are not done yet, with their plans, in plan order. */
  async pendingChunks<P>(): Promise<Array<{ id: string; sourceTable: string; attempt: number; plan: P }>> {
    const { rows } = await this.client.query(
      `SELECT chunk_id, source_table, attempt, plan FROM pgferry.chunks WHERE task = $1 AND NOT done ORDER BY chunk_id`,
      [this.task],
    );
    return rows.map((r) => ({
      id: r.chunk_id,
      sourceTable: r.source_table,
      attempt: r.attempt,
      plan: r.plan as P,
    }));
  }

  /** Starts a (re)try of a chunk; returns its attempt number (0 first). */
  async beginChunk(chunkId: string): Promise<number> {
    const { rows } = await this.client.query(
      `UPDATE pgferry.chunks SET attempt = attempt + 1, rows_sent = 0, bytes_sent = 0 WHERE task = $1 AND chunk_id = $2 RETURNING attempt - 1 AS attempt`,
      [this.task, chunkId],
    );
    return rows[0].attempt;
  }

  /** Marks a chunk finished; called only after Kafka acknowledged all its records. */
  async finishChunk(chunkId: string, rows: number, bytes: number): Promise<void> {
    await this.client.query(
      `UPDATE pgferry.chunks SET done = true, rows_sent = $3, bytes_sent = $4 WHERE task = $1 AND chunk_id = $2`,
      [this.task, chunkId, rows, bytes],
    );
  }

  async chunkProgress(): Promise<
    Array<{ sourceTable: string; chunks: number; done: number; rows: number; bytes: number }>
  > {
    const { rows } = await this.client.query(
      `SELECT source_table, count(*)::int AS chunks, count(*) FILTER (WHERE done)::int AS done, sum(rows_sent)::bigint AS rows, sum(bytes_sent)::bigint AS bytes
         FROM pgferry.chunks WHERE task = $1 GROUP BY source_table ORDER BY source_table`,
      [this.task],
    );
    return rows.map((r) => ({
      sourceTable: r.source_table,
      chunks: r.chunks,
      done: r.done,
      rows: Number(r.rows),
      bytes: Number(r.bytes),
    }));
  }
}
