import type { Client, PoolClient } from 'pg';
import { TransientError } from '@pgferry/core';
import { classifyPgError } from '@pgferry/pg';

/**
 * The control schema `pgferry` in the destination: phase state per task, snapshot chunk
 * progress, and the applier's consumed Kafka offsets. Offsets are written in the same
 * transaction as the rows they cover, so a restarted applier resumes exactly where the last
 * committed transaction ended. Every statement here is idempotent (IF NOT EXISTS, upserts).
 */
export const CONTROL_SCHEMA = 'pgferry';

export type PhaseName =
  'precheck' | 'schema-pre' | 'full-data' | 'schema-post' | 'verify' | 'incremental' | 'cutover';
export type PhaseStatus = 'pending' | 'running' | 'done' | 'failed';

export const CONTROL_DDL = `
CREATE SCHEMA IF NOT EXISTS pgferry;
CREATE TABLE IF NOT EXISTS pgferry.tasks (
  task text PRIMARY KEY,
  spec jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  slot_name text,
  consistent_lsn pg_lsn,
  snapshot_name text
);
CREATE TABLE IF NOT EXISTS pgferry.phases (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  phase text NOT NULL,
  status text NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  detail jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (task, phase)
);
CREATE TABLE IF NOT EXISTS pgferry.chunks (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  chunk_id text NOT NULL,
  source_table text NOT NULL,
  plan jsonb NOT NULL DEFAULT '{}',
  attempt int NOT NULL DEFAULT 0,
  rows_sent bigint NOT NULL DEFAULT 0,
  bytes_sent bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  PRIMARY KEY (task, chunk_id)
);
CREATE TABLE IF NOT EXISTS pgferry.offsets (
  consumer_group text NOT NULL,
  topic text NOT NULL,
  partition int NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
CREATE TABLE IF NOT EXISTS pgferry.truncates (
  consumer_group text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  lsn bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (consumer_group, schema_name, table_name)
);
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS cutover_requested_at timestamptz;
ALTER TABLE pgferry.offsets ADD COLUMN IF NOT EXISTS stream_pos bytea;
CREATE TABLE IF NOT EXISTS pgferry.stream_marks (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  lsn pg_lsn NOT NULL,
  commit_time timestamptz NOT NULL,
  ends jsonb NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, lsn)
);
CREATE TABLE IF NOT EXISTS pgferry.ddl_applied (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  ddl_id bigint NOT NULL,
  command text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, ddl_id)
);
CREATE TABLE IF NOT EXISTS pgferry.stream_tables (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  topic text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  key_columns text[] NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, topic)
);
CREATE TABLE IF NOT EXISTS pgferry.stream_status (
  task text PRIMARY KEY REFERENCES pgferry.tasks ON DELETE CASCADE,
  source_lsn pg_lsn,
  captured_lsn pg_lsn,
  capture_lag_ms bigint,
  published bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgferry.stream_settings (
  task text PRIMARY KEY REFERENCES pgferry.tasks ON DELETE CASCADE,
  settings jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgferry.leases (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  role text NOT NULL,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, role)
);`;

type Queryable = Pick<Client | PoolClient, 'query'>;

export async function ensureControlSchema(client: Queryable): Promise<void> {
  try {
    await client.query(CONTROL_DDL);
  } catch (err) {
    throw classifyPgError(err, 'creating the pgferry control schema on the destination');
  }
}

export interface TaskRecord {
  task: string;
  slotName: string | null;
  consistentLsn: string | null;
  snapshotName: string | null;
}

export class ControlStore {
  constructor(
    private readonly client: Queryable,
    readonly task: string,
  ) {}

  async registerTask(spec: unknown): Promise<void> {
    await this.client.query(
      `INSERT INTO pgferry.tasks (task, spec) VALUES ($1, $2) ON CONFLICT (task) DO UPDATE SET spec = EXCLUDED.spec`,
      [this.task, JSON.stringify(spec)],
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

/** The next offset to consume per partition of `topics`, as stored with the applied rows. */
export async function readOffsets(
  client: Queryable,
  group: string,
  topics: string[],
): Promise<Map<string, bigint>> {
  const { rows } = await client.query(
    `SELECT topic, partition, next_offset FROM pgferry.offsets WHERE consumer_group = $1 AND topic = ANY($2::text[])`,
    [group, topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
}

/**
 * Must run inside the transaction that applied the records below `nextOffset`. `streamPos`, when
 * given, is the stream position of the last change among them (kept otherwise).
 */
export async function storeOffset(
  client: Queryable,
  group: string,
  topic: string,
  partition: number,
  nextOffset: bigint,
  streamPos?: Buffer | null,
): Promise<void> {
  await client.query(
    `INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
       stream_pos = coalesce(EXCLUDED.stream_pos, pgferry.offsets.stream_pos), updated_at = now()`,
    [group, topic, partition, nextOffset.toString(), streamPos ?? null],
  );
}

/** What a batch leaves in pgferry.offsets, and (fenced) what it expects to find there. */
export interface OffsetUpdate {
  topic: string;
  partition: number;
  nextOffset: bigint;
  streamPos?: Buffer | null;
  /**
   * The next offset this applier believes is stored (0 for a partition never applied): with
   * it, the update is a compare-and-set and fails with OffsetFenceError when another applier of
   * the group moved the partition on meanwhile (appliers scaled out, during a rebalance).
   */
  expected?: bigint;
}

/**
 * Another applier of the group committed this partition first: the transaction must roll back
 * (its rows would be applied twice). Retriable: a new applier reads the stored offsets again.
 */
export class OffsetFenceError extends TransientError {
  constructor(group: string, partitions: string[]) {
    super(
      `consumer group ${group}: another applier committed ${partitions.join(', ')} first (the group rebalanced); this batch was rolled back and is applied from the stored offset`,
      { code: 'OFFSET_FENCE' },
    );
  }
}

/**
 * storeOffset for several partitions in one statement (one round trip); must run inside the
 * transaction that applied the records. With `expected` on every update it is a compare-and-set:
 * the row lock taken by the update orders two appliers of one partition, and the one that finds
 * the offset moved on gets OffsetFenceError.
 */
export async function storeOffsets(
  client: Queryable,
  group: string,
  marks: ReadonlyArray<OffsetUpdate>,
): Promise<void> {
  if (!marks.length) return;
  const args = [
    group,
    marks.map((m) => m.topic),
    marks.map((m) => m.partition),
    marks.map((m) => m.nextOffset.toString()),
    marks.map((m) => m.streamPos ?? null),
  ];
  if (marks.some((m) => m.expected === undefined)) {
    await client.query(
      `INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos)
       SELECT $1, u.topic, u.partition, u.next_offset, u.stream_pos
         FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(topic, partition, next_offset, stream_pos)
       ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
         stream_pos = coalesce(EXCLUDED.stream_pos, pgferry.offsets.stream_pos), updated_at = now()`,
      args,
    );
    return;
  }
  const { rows } = await client
    .query(
      `WITH u AS (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::bigint[])
                  AS u(topic, partition, next_offset, stream_pos, expected)),
          upd AS (UPDATE pgferry.offsets o SET next_offset = u.next_offset,
                         stream_pos = coalesce(u.stream_pos, o.stream_pos), updated_at = now()
                    FROM u
                   WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition
                     AND o.next_offset = u.expected
               RETURNING o.topic, o.partition),
          ins AS (INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos)
                  SELECT $1, u.topic, u.partition, u.next_offset, u.stream_pos FROM u
                   WHERE u.expected = 0 AND NOT EXISTS (SELECT 1 FROM pgferry.offsets o
                         WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition)
               RETURNING topic, partition)
     SELECT u.topic, u.partition FROM u
      WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.topic = u.topic AND upd.partition = u.partition)
        AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.topic = u.topic AND ins.partition = u.partition)`,
      [...args, marks.map((m) => m.expected!.toString())],
    )
    .catch((err) => {
      // Two appliers inserting a partition's first offset: the second one's insert conflicts.
      if ((err as { code?: string }).code === '23505')
        throw new OffsetFenceError(
          group,
          marks.map((m) => `${m.topic}:${m.partition}`),
        );
      throw err;
    });
  if (rows.length)
    throw new OffsetFenceError(
      group,
      rows.map((r) => `${r.topic}:${r.partition}`),
    );
}

/** The stream position of the last change applied per "topic:partition" (see storeOffset). */
export async function readStreamPositions(
  client: Queryable,
  group: string,
  topics: string[],
): Promise<Map<string, Buffer>> {
  const { rows } = await client.query(
    `SELECT topic, partition, stream_pos FROM pgferry.offsets
      WHERE consumer_group = $1 AND topic = ANY($2::text[]) AND stream_pos IS NOT NULL`,
    [group, topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r.stream_pos as Buffer]));
}

/**
 * A table the stream gained after the task started (created on the source in a schema the task
 * takes whole, or a streamed table renamed there): its topic and key, for the appliers, which
 * follow this list, and for cutover.
 */
export interface StreamTable {
  topic: string;
  schema: string;
  table: string;
  key: string[];
}

/** Records a table the stream now carries (idempotent: a restarted capture records it again). */
export async function addStreamTable(client: Queryable, task: string, t: StreamTable): Promise<void> {
  await client.query(
    `INSERT INTO pgferry.stream_tables (task, topic, schema_name, table_name, key_columns) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (task, topic) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name, key_columns = EXCLUDED.key_columns`,
    [task, t.topic, t.schema, t.table, t.key],
  );
}

/** The tables the stream gained since the task started, in the order they came. */
export async function readStreamTables(client: Queryable, task: string): Promise<StreamTable[]> {
  const { rows } = await client.query<StreamTable>(
    `SELECT topic, schema_name AS schema, table_name AS table, key_columns AS key FROM pgferry.stream_tables
      WHERE task = $1 ORDER BY added_at, topic`,
    [task],
  );
  return rows;
}

/** Where a batch leaves a partition: stored with the batch, in the same destination transaction. */
export interface OffsetMark {
  group: string;
  topic: string;
  partition: number;
  /** The offset after the last record of the batch. */
  nextOffset: bigint;
  /**
   * The stream position (see streamPosition) of the last change applied in this partition,
   * when the batch had any: a change sent again after a capture restart is recognised by it.
   */
  streamPos?: Buffer | null;
  /** The next offset the applier expects stored (see OffsetUpdate.expected): fences scaled-out appliers. */
  expected?: bigint;
}
