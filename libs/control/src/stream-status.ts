import type { Client, PoolClient } from 'pg';
import { classifyPgError, formatLsn, parseLsn, type Lsn } from '@pgferry/pg';

type Queryable = Pick<Client | PoolClient, 'query'>;

/**
 * "Everything the source committed up to `lsn` is in Kafka below `ends`": once the applier's
 * offsets reach every entry of `ends`, the destination holds every change up to `lsn`. This is
 * how applied LSN and lag are measured across partitions that progress independently.
 */
export interface StreamMark {
  lsn: Lsn;
  commitTime: Date;
  /**
   * Next offset per "topic:partition" (the start offsets and every partition written since). A
   * live view, current when `onCommit` is called: copy it to keep it.
   */
  ends: ReadonlyMap<string, bigint>;
}

/** The applier's consumer group of a task (its offsets in pgferry.offsets). */
export function applierGroup(task: string): string {
  return `pgferry-${task}-applier`;
}

/**
 * The WAL the task's slot holds back on the source (pg_replication_slots), as the capture last
 * read it. Until the stream confirms it, the source keeps every byte of it on disk.
 */
export interface SlotWal {
  /** pg_current_wal_lsn() - restart_lsn: the WAL kept for the slot; null when it has no restart_lsn (lost). */
  retainedBytes: number | null;
  /** reserved, extended, unreserved or lost (PostgreSQL 13 and later); null before. */
  walStatus: string | null;
  /** WAL the source can still write before the slot is at risk (safe_wal_size); null when unbounded. */
  safeWalSizeBytes: number | null;
  /** max_slot_wal_keep_size in bytes; null when unlimited (-1) or before PostgreSQL 13. */
  maxSlotWalKeepSizeBytes: number | null;
}

/** What the capture reports about the stream, about once a second. */
export interface CaptureReport {
  /** The slot's WAL retention when the report was made (null: not read). */
  slot?: SlotWal | null;
  /** The source's current WAL position when the report was made. */
  sourceLsn: Lsn | null;
  /** Confirmed to the slot: everything before it is acknowledged by Kafka. */
  capturedLsn: Lsn;
  /** Source commit of the last heartbeat to when the capture read it (ms); null before the first. */
  captureLagMs: number | null;
  /** Records this capture process published. */
  published: number;
  /** Changes this capture process left out by objects.include[].operations, by operation. */
  skipped?: Record<string, number>;
}

/**
 * Records a stream mark (see StreamMark) and the capture's report in the destination's control
 * schema, and prunes marks older than the newest one the applier has fully applied (the only
 * old mark the lag needs).
 */
export async function writeCaptureReport(
  client: Queryable,
  task: string,
  report: CaptureReport,
  mark: StreamMark | null,
): Promise<void> {
  try {
    if (mark) {
      await client.query(
        `INSERT INTO pgferry.stream_marks (task, lsn, commit_time, ends) VALUES ($1, $2::pg_lsn, $3, $4)
         ON CONFLICT (task, lsn) DO UPDATE SET ends = EXCLUDED.ends, written_at = now()`,
        [
          task,
          formatLsn(mark.lsn),
          mark.commitTime,
          JSON.stringify(Object.fromEntries([...mark.ends].map(([k, v]) => [k, v.toString()]))),
        ],
      );
      const applied = await appliedMark(client, task);
      if (applied)
        await client.query(`DELETE FROM pgferry.stream_marks WHERE task = $1 AND lsn < $2::pg_lsn`, [
          task,
          formatLsn(applied.lsn),
        ]);
    }
    await client.query(
      `INSERT INTO pgferry.stream_status (task, source_lsn, captured_lsn, capture_lag_ms, published, slot, skipped, updated_at)
       VALUES ($1, $2::pg_lsn, $3::pg_lsn, $4, $5, $6::jsonb, $7::jsonb, now())
       ON CONFLICT (task) DO UPDATE SET source_lsn = coalesce(EXCLUDED.source_lsn, pgferry.stream_status.source_lsn),
         captured_lsn = EXCLUDED.captured_lsn, capture_lag_ms = EXCLUDED.capture_lag_ms,
         published = EXCLUDED.published, slot = coalesce(EXCLUDED.slot, pgferry.stream_status.slot),
         skipped = EXCLUDED.skipped, updated_at = now()`,
      [
        task,
        report.sourceLsn === null ? null : formatLsn(report.sourceLsn),
        formatLsn(report.capturedLsn),
        report.captureLagMs,
        report.published,
        report.slot ? JSON.stringify(report.slot) : null,
        report.skipped ? JSON.stringify(report.skipped) : null,
      ],
    );
  } catch (err) {
    throw classifyPgError(err, `recording the stream position of task ${task} on the destination`);
  }
}

/**
 * SQL: the next offset the applier's group (the parameter `group`, e.g. '$2') stored for the
 * mark partition `e.key` ("topic:partition", from jsonb_each_text of a mark's ends), or null.
 */
const storedOffsetOf = (group: string) =>
  `(SELECT o.next_offset FROM pgferry.offsets o WHERE o.consumer_group = ${group} AND o.topic || ':' || o.partition = e.key)`;

/**
 * The newest mark whose every partition end the applier's stored offsets have reached: the
 * destination holds every source change up to its LSN. Null before the first such mark.
 */
export async function appliedMark(
  client: Queryable,
  task: string,
): Promise<{ lsn: Lsn; commitTime: Date } | null> {
  const { rows } = await client.query<{ lsn: string; commit_time: Date }>(
    `SELECT m.lsn::text AS lsn, m.commit_time FROM pgferry.stream_marks m
      WHERE m.task = $1 AND NOT EXISTS (
        SELECT 1 FROM jsonb_each_text(m.ends) e
         WHERE e.value::bigint > coalesce(${storedOffsetOf('$2')}, 0))
      ORDER BY m.lsn DESC LIMIT 1`,
    [task, applierGroup(task)],
  );
  return rows[0] ? { lsn: parseLsn(rows[0].lsn), commitTime: rows[0].commit_time } : null;
}

/**
 * The partition ends of the task's mark at `lsn` against the applier's stored offsets, as
 * "topic:partition end/stored" (a diagnosis of what made the mark count as applied), or null
 * when there is no such mark.
 */
export async function markCoverage(client: Queryable, task: string, lsn: Lsn): Promise<string | null> {
  // One row per partition end; one row of nulls for a mark without any; none without the mark.
  const { rows } = await client.query<{ part: string | null; end: string | null; stored: string | null }>(
    `SELECT e.key AS part, e.value AS end, ${storedOffsetOf('$3')}::text AS stored
       FROM pgferry.stream_marks m LEFT JOIN LATERAL jsonb_each_text(m.ends) e ON true
      WHERE m.task = $1 AND m.lsn = $2::pg_lsn ORDER BY e.key`,
    [task, formatLsn(lsn), applierGroup(task)],
  );
  if (!rows.length) return null;
  const parts = rows.filter((r) => r.part !== null);
  return parts.length
    ? parts.map((r) => `${r.part} ${r.end}/${r.stored ?? '-'}`).join(', ')
    : 'no partitions';
}

/** Lag and positions of a task's incremental stream (GET /tasks/:id, the CLI, cutover). */
export interface StreamLag {
  sourceLsn: string | null;
  capturedLsn: string | null;
  appliedLsn: string | null;
  /** Source WAL between the source's position and what the destination holds. */
  lagBytes: number | null;
  /**
   * Age of the newest source commit the destination is known to hold (marks come with every
   * commit, heartbeats at least every second), so an idle, caught-up stream reads about one
   * heartbeat interval. Null before the first mark is applied.
   */
  lagSeconds: number | null;
  /** lagSeconds is known and under the task's bound (options.lagBoundSeconds). */
  notDelayed: boolean;
  /** Records this run applied so far: the applier's stored offsets past the run's start offsets, summed (tombstones included). */
  appliedRecords: number;
  /** Records the running capture published. */
  publishedRecords: number;
  /** Changes the running capture left out by objects.include[].operations, by operation. */
  skipped?: Record<string, number> | null;
  captureLagMs: number | null;
  /** When the capture last reported; a stale time means the capture is not running. */
  reportedAt: string | null;
  /** The WAL the slot holds back on the source, as the capture last reported it. */
  slot: SlotWal | null;
}

export async function readStreamLag(
  client: Queryable,
  task: string,
  boundSeconds: number,
): Promise<StreamLag> {
  const status = await client.query(
    `SELECT source_lsn::text AS source, captured_lsn::text AS captured, capture_lag_ms, published, slot, skipped, updated_at
       FROM pgferry.stream_status WHERE task = $1`,
    [task],
  );
  const applied = await appliedMark(client, task);
  const offsets = await client.query<{ n: string | null }>(
    `SELECT sum(o.next_offset - coalesce(s.start_offset, 0))::text AS n FROM pgferry.offsets o
       LEFT JOIN pgferry.start_offsets s ON s.task = $2 AND s.topic = o.topic AND s.partition = o.partition
      WHERE o.consumer_group = $1`,
    [applierGroup(task), task],
  );
  const s = status.rows[0];
  const source = s?.source ? parseLsn(s.source) : null;
  const captured = s?.captured ? parseLsn(s.captured) : null;
  const newest = source !== null && captured !== null && captured > source ? captured : source;
  const lagSeconds = applied ? Math.max(0, (Date.now() - applied.commitTime.getTime()) / 1000) : null;
  return {
    sourceLsn: source === null ? null : formatLsn(source),
    capturedLsn: captured === null ? null : formatLsn(captured),
    appliedLsn: applied ? formatLsn(applied.lsn) : null,
    lagBytes: newest !== null && applied ? Number(newest > applied.lsn ? newest - applied.lsn : 0n) : null,
    lagSeconds,
    notDelayed: lagSeconds !== null && lagSeconds < boundSeconds,
    appliedRecords: Number(offsets.rows[0]?.n ?? 0),
    publishedRecords: s ? Number(s.published) : 0,
    skipped: (s?.skipped as Record<string, number> | null | undefined) ?? null,
    captureLagMs:
      s?.capture_lag_ms === null || s?.capture_lag_ms === undefined ? null : Number(s.capture_lag_ms),
    reportedAt: s?.updated_at ? (s.updated_at as Date).toISOString() : null,
    slot: (s?.slot as SlotWal | null | undefined) ?? null,
  };
}

/** Records/s applied between two readings of StreamLag.appliedRecords (0 on the first). */
export class AppliedRate {
  private last: { at: number; records: number } | null = null;

  update(records: number, now: number = Date.now()): number {
    const before = this.last;
    this.last = { at: now, records };
    return before && now > before.at
      ? Math.max(0, (records - before.records) / ((now - before.at) / 1000))
      : 0;
  }
}

/** Asks the task's running controller to cut over (see runIncremental). Idempotent. */
export async function requestCutover(client: Queryable, task: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE pgferry.tasks SET cutover_requested_at = coalesce(cutover_requested_at, now()) WHERE task = $1`,
    [task],
  );
  return (rowCount ?? 0) > 0;
}

export async function cutoverRequested(client: Queryable, task: string): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT cutover_requested_at IS NOT NULL AS asked FROM pgferry.tasks WHERE task = $1`,
    [task],
  );
  return rows[0]?.asked === true;
}
