import { DataError, ObjectError, SpecError } from '@pgferry/core';
import { formatLsn, parseLsn, type Lsn } from '@pgferry/pg';
import {
  decodeTransactionRecord,
  RUN_HEADER,
  STREAM_POSITION_HEADER,
  transactionsTopic,
} from '@pgferry/avro';
import { KafkaPartitionFetcher, withKafkaAdmin } from '@pgferry/kafka';
import { forEachRecordView, recordHeader, type RecordView } from '@pgferry/kafka-protocol';
import type { KafkaClient } from '../kafka-client';
import type { ReplayManifest } from '../replay-manifest';

/** Where a replay ends: the end of the topics, a commit LSN, or a commit time. */
export type ReplayPoint = { lsn?: string; time?: string };

/** The records a replay applies: per table "topic:partition", from `starts` to before `ends`. */
export interface ReplayBounds {
  starts: Map<string, bigint>;
  /** Where each partition's snapshot records end: its first change (or its end). */
  snapshotEnds: Map<string, bigint>;
  ends: Map<string, bigint>;
  /** The commit LSN replayed up to (inclusive), null for everything the topics hold. */
  untilLsn: Lsn | null;
  /** With a point: the last commit LSN of the stream in the topics (null when they hold the snapshot only). */
  streamEnd: Lsn | null;
}

const SCAN = { maxWaitMs: 100, maxBytesPerPartition: 4 << 20, maxBytes: 16 << 20 };

/**
 * The records of the manifest's run that replay to `point`: every table partition from the
 * run's start offset up to the first record committed after the point (every record before
 * it, since a partition holds its changes in commit order; a record sent again after a capture
 * restart carries its first position, and one already applied is skipped by the applier). Reads
 * the topics' headers only (without a point, up to each partition's first change). Clear errors: a missing topic, a log that no longer starts at the
 * run's start (retention), a point before the snapshot or after the stream's end.
 */
export async function replayBounds(
  kafka: KafkaClient,
  manifest: ReplayManifest,
  point: ReplayPoint,
): Promise<ReplayBounds> {
  if (point.lsn && point.time) throw new SpecError(['give --until-lsn or --until-time, not both']);
  const topics = manifest.targets.map((t) => t.topic);
  const { logStarts, highs } = await withKafkaAdmin(kafka, async (admin) => {
    const have = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !have.has(t));
    if (missing.length)
      throw new ObjectError(
        `Kafka has no topic ${missing.join(', ')} of task ${manifest.task} (run ${manifest.runId}): it was deleted, or this is not the Kafka the task wrote to; replay needs every table topic of the task`,
        { code: 'REPLAY_TOPIC_MISSING' },
      );
    return { logStarts: await admin.topicStarts(topics), highs: await admin.topicEnds(topics) };
  });
  const starts = new Map<string, bigint>();
  for (const [key, high] of highs) {
    const recorded = manifest.startOffsets[key];
    if (recorded === undefined)
      throw new ObjectError(
        `task ${manifest.task} (run ${manifest.runId}) recorded no start offset for Kafka ${describe(key)}: the partition was added after the run began, so replay cannot tell where the run's records begin there`,
        { code: 'NO_START_OFFSET' },
      );
    const start = BigInt(recorded);
    const logStart = logStarts.get(key) ?? 0n;
    if (logStart > start)
      throw new DataError(
        `Kafka ${describe(key)}: run ${manifest.runId} of task ${manifest.task} begins at offset ${start}, but the log now starts at offset ${logStart} (ends at ${high}): retention or DeleteRecords removed ${logStart - start} records replay needs; replay needs the table topics whole from the run's start (retention.ms -1, see docs/records.md)`,
        { code: 'REPLAY_RETENTION_GAP' },
      );
    starts.set(key, start);
  }
  let untilLsn: Lsn | null = null;
  if (point.lsn) untilLsn = parseLsn(point.lsn);
  if (point.time) untilLsn = await lsnAtTime(kafka, manifest, point.time);
  const scan = await scanPositions(kafka, starts, highs, untilLsn);
  if (untilLsn !== null) {
    const snapshot = manifest.snapshotLsn ? parseLsn(manifest.snapshotLsn) : null;
    if (snapshot !== null && untilLsn < snapshot)
      throw new ObjectError(
        `LSN ${formatLsn(untilLsn)} is before the snapshot of task ${manifest.task} (taken at ${formatLsn(snapshot)}): the topics hold no state before it; give an LSN at or after ${formatLsn(snapshot)}`,
        { code: 'REPLAY_BEFORE_SNAPSHOT' },
      );
    const last = scan.streamEnd ?? snapshot;
    if (last === null || untilLsn > last)
      throw new ObjectError(
        `LSN ${formatLsn(untilLsn)} is beyond the end of task ${manifest.task}'s stream on Kafka: ${last === null ? 'its topics hold no change yet' : `the last change there was committed at ${formatLsn(last)}`}; give an LSN at or before it, or leave --until-lsn out to replay everything`,
        { code: 'REPLAY_BEYOND_END' },
      );
  }
  return {
    starts,
    snapshotEnds: scan.snapshotEnds,
    ends: untilLsn === null ? highs : scan.ends,
    untilLsn,
    streamEnd: scan.streamEnd,
  };
}

/**
 * Reads every partition from its start, headers only: where its snapshot records end (the first
 * record with a pgferry.pos header: a change), and with a point, the first offset whose commit
 * LSN is after it (the partition's end when none is) and the stream's last commit LSN. Without
 * a point a partition is read only up to its first change.
 */
async function scanPositions(
  kafka: KafkaClient,
  starts: ReadonlyMap<string, bigint>,
  highs: ReadonlyMap<string, bigint>,
  until: Lsn | null,
): Promise<{ ends: Map<string, bigint>; snapshotEnds: Map<string, bigint>; streamEnd: Lsn | null }> {
  const ends = new Map(highs);
  const snapshotEnds = new Map(highs);
  let streamEnd: Lsn | null = null;
  const open = [...starts].filter(([k, s]) => s < highs.get(k)!);
  if (!open.length) return { ends, snapshotEnds, streamEnd };
  const fetcher = new KafkaPartitionFetcher(kafka, SCAN);
  const cut = new Set<string>();
  const changed = new Set<string>();
  try {
    const topics = [...new Set(open.map(([k]) => k.slice(0, k.lastIndexOf(':'))))];
    await fetcher.connect(topics, (topic, partition) => starts.get(`${topic}:${partition}`) ?? 0n);
    const left = new Set(open.map(([k]) => k));
    for (const key of starts.keys()) if (!left.has(key)) pause(fetcher, key);
    while (left.size) {
      for (const data of await fetcher.fetch()) {
        const key = `${data.topic}:${data.partition}`;
        if (!left.has(key)) continue;
        const high = highs.get(key)!;
        for (const b of data.batches)
          forEachRecordView({ ...b, until: high }, data.from, `Kafka ${describe(key)}`, (r) => {
            const commit = commitLsn(r);
            if (commit === null) return;
            if (!changed.has(key)) {
              changed.add(key);
              snapshotEnds.set(key, BigInt(r.offset));
            }
            if (streamEnd === null || commit > streamEnd) streamEnd = commit;
            if (until !== null && commit > until && !cut.has(key)) {
              cut.add(key);
              ends.set(key, BigInt(r.offset));
            }
          });
        const done = data.nextOffset >= high || (until === null && changed.has(key));
        if (done && left.delete(key)) pause(fetcher, key);
      }
    }
  } finally {
    await fetcher.close();
  }
  return { ends, snapshotEnds, streamEnd };
}

function pause(fetcher: KafkaPartitionFetcher, key: string): void {
  const at = key.lastIndexOf(':');
  fetcher.pause(key.slice(0, at), Number(key.slice(at + 1)));
}

/** The commit LSN in a record's pgferry.pos header, null for a record without one (a snapshot row). */
function commitLsn(r: RecordView): Lsn | null {
  const pos = recordHeader(r, STREAM_POSITION_HEADER);
  return pos && pos.length === 12 ? pos.readBigUInt64BE(0) : null;
}

/**
 * The commit LSN of the run's last transaction committed at or before `time`, from the END
 * records of `<prefix>.transactions` (their ts_ms is the commit time; their pgferry.pos the
 * commit LSN).
 */
async function lsnAtTime(kafka: KafkaClient, manifest: ReplayManifest, time: string): Promise<Lsn> {
  const at = Date.parse(time);
  if (Number.isNaN(at))
    throw new SpecError([`--until-time: "${time}" is not a time (give ISO 8601, e.g. 2026-12-07T09:00:00Z)`]);
  const topic = transactionsTopic(manifest.prefix);
  const key = `${topic}:0`;
  const { start, end } = await withKafkaAdmin(kafka, async (admin) => {
    if (!(await admin.listTopics()).includes(topic))
      throw new ObjectError(
        `--until-time needs Kafka topic ${topic} (task ${manifest.task}'s transaction records, which give each commit's time), and Kafka has none: the task streamed no change, or the topic was deleted; use --until-lsn`,
        { code: 'REPLAY_TOPIC_MISSING' },
      );
    return {
      start: (await admin.topicStarts([topic])).get(key) ?? 0n,
      end: (await admin.topicEnds([topic])).get(key) ?? 0n,
    };
  });
  const run = Buffer.from(manifest.runId, 'latin1');
  let best: Lsn | null = null;
  let first: number | null = null;
  if (end > start) {
    const fetcher = new KafkaPartitionFetcher(kafka, SCAN);
    try {
      await fetcher.connect([topic], () => start);
      for (let next = start; next < end;) {
        for (const data of await fetcher.fetch()) {
          for (const b of data.batches)
            forEachRecordView({ ...b, until: end }, data.from, `Kafka topic ${topic}`, (r) => {
              if (r.valueStart < 0 || !recordHeader(r, RUN_HEADER)?.equals(run)) return;
              const commit = commitLsn(r);
              const value = decodeTransactionRecord(r.buf.subarray(r.valueStart, r.valueEnd));
              if (value.status !== 'END' || commit === null) return;
              first ??= value.ts_ms;
              if (value.ts_ms <= at && (best === null || commit > best)) best = commit;
            });
          next = data.nextOffset;
        }
      }
    } finally {
      await fetcher.close();
    }
  }
  if (best === null)
    throw new ObjectError(
      first === null
        ? `--until-time ${time}: Kafka topic ${topic} holds no transaction of run ${manifest.runId} of task ${manifest.task} (offsets ${start} to ${end}); use --until-lsn, or leave the point out`
        : `--until-time ${time} is before the first transaction of task ${manifest.task} on Kafka (committed ${new Date(first).toISOString()}); give a later time`,
      { code: 'REPLAY_BEFORE_SNAPSHOT' },
    );
  return best;
}

function describe(key: string): string {
  const at = key.lastIndexOf(':');
  return `topic ${key.slice(0, at)} partition ${key.slice(at + 1)}`;
}
