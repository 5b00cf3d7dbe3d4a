import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DataError, ObjectError } from '@pgferry/core';
import { RUN_HEADER, schemaTopic } from '@pgferry/avro';
import type { ApplierTarget } from '@pgferry/apply';
import type { SavedSchemaPlan } from '@pgferry/schema';
import { KafkaPartitionFetcher, KafkaProducer, withKafkaAdmin } from '@pgferry/kafka';
import { forEachRecordView, recordHeader } from '@pgferry/kafka-protocol';
import type { KafkaClient } from './kafka-client';

/**
 * What replay needs to know of a task that is not in its table topics, published by the task
 * itself on `<prefix>.schema` (one partition): the run, where its table topics' records begin,
 * where each topic's rows go (the destination names and keys, renames applied) and the schema
 * dump the task restored (pg_dump's archive and the restore plan). Replay reads it instead of
 * the source and the destination, which it never reaches.
 */
export interface ReplayManifest {
  format: 1;
  task: string;
  runId: string;
  prefix: string;
  /** When the task published it (ISO). */
  publishedAt: string;
  source: { system: string; database: string };
  /** The LSN the snapshot was taken at: the stream's changes are those committed after it. */
  snapshotLsn: string | null;
  consistency: 'per-key' | 'transactional';
  targets: ApplierTarget[];
  /** The run's start offset per "topic:partition" of the table topics, as decimal text. */
  startOffsets: Record<string, string>;
  /** The task's schema: null when it did not migrate the schema (the tables must exist). */
  schema: { plan: SavedSchemaPlan; dump: Buffer } | null;
}

/** Bytes per record: well under every broker's default max.message.bytes (1 MB). */
const PART_BYTES = 256 * 1024;
/** Header of each record of a manifest: "<part>/<parts>", parts counted from 1. */
const PART_HEADER = 'pgferry.part';

/**
 * Publishes `manifest` on `<prefix>.schema` (created when missing, kept forever: retention.ms
 * and retention.bytes -1): its JSON, gzipped, cut into records of at most 256 kB keyed by one
 * random id, each with headers pgferry.run and pgferry.part. Publishing again (a resumed task)
 * adds a newer copy; readers take the newest complete one.
 */
export async function publishReplayManifest(kafka: KafkaClient, manifest: ReplayManifest): Promise<void> {
  const topic = schemaTopic(manifest.prefix);
  // Kept as long as the table topics may be replayed: it is a few records per run.
  await withKafkaAdmin(kafka, (admin) =>
    admin.ensureTopics([
      { name: topic, partitions: 1, configs: { 'retention.ms': '-1', 'retention.bytes': '-1' } },
    ]),
  );
  const body = gzipSync(
    JSON.stringify({
      ...manifest,
      schema: manifest.schema && {
        plan: manifest.schema.plan,
        dump: manifest.schema.dump.toString('base64'),
      },
    }),
  );
  const id = Buffer.from(randomBytes(8).toString('hex'), 'latin1');
  const parts = Math.max(1, Math.ceil(body.length / PART_BYTES));
  const producer = new KafkaProducer(kafka);
  try {
    await producer.connect();
    await producer.publish(
      topic,
      Array.from({ length: parts }, (_, i) => ({
        key: id,
        value: body.subarray(i * PART_BYTES, (i + 1) * PART_BYTES),
        partition: 0,
        headers: [
          { key: RUN_HEADER, value: Buffer.from(manifest.runId, 'latin1') },
          { key: PART_HEADER, value: Buffer.from(`${i + 1}/${parts}`, 'latin1') },
        ],
      })),
    );
  } finally {
    await producer.close().catch(() => undefined);
  }
}

/** The schema part of a manifest from a task's schema work dir (the dump step's plan and archive). */
export function manifestSchema(plan: SavedSchemaPlan): NonNullable<ReplayManifest['schema']> {
  return { plan: { ...plan, dumpFile: basename(plan.dumpFile) }, dump: readFileSync(plan.dumpFile) };
}

/**
 * The newest complete manifest on `<prefix>.schema`, or null when the topic does not exist.
 * Throws a DataError naming the topic when it exists but holds none (emptied by retention, or
 * written by something else).
 */
export async function readReplayManifest(kafka: KafkaClient, prefix: string): Promise<ReplayManifest | null> {
  const topic = schemaTopic(prefix);
  const { start, end, exists } = await withKafkaAdmin(kafka, async (admin) => {
    if (!(await admin.listTopics()).includes(topic)) return { start: 0n, end: 0n, exists: false };
    return {
      start: (await admin.topicStarts([topic])).get(`${topic}:0`) ?? 0n,
      end: (await admin.topicEnds([topic])).get(`${topic}:0`) ?? 0n,
      exists: true,
    };
  });
  if (!exists) return null;
  const pieces = new Map<string, { parts: number; got: Map<number, Buffer>; last: bigint }>();
  if (end > start) {
    const fetcher = new KafkaPartitionFetcher(kafka, {
      maxWaitMs: 100,
      maxBytesPerPartition: 4 << 20,
      maxBytes: 16 << 20,
    });
    try {
      await fetcher.connect([topic], () => start);
      for (let next = start; next < end;) {
        for (const data of await fetcher.fetch()) {
          for (const b of data.batches)
            forEachRecordView(b, data.from, `Kafka topic ${topic}`, (r) => {
              const part = recordHeader(r, PART_HEADER)?.toString('latin1').split('/').map(Number);
              if (r.keyStart < 0 || r.valueStart < 0 || !part || BigInt(r.offset) >= end) return;
              const id = r.buf.toString('latin1', r.keyStart, r.keyEnd);
              const p = pieces.get(id) ?? { parts: part[1], got: new Map(), last: 0n };
              p.got.set(part[0], Buffer.from(r.buf.subarray(r.valueStart, r.valueEnd)));
              p.last = BigInt(r.offset);
              pieces.set(id, p);
            });
          next = data.nextOffset;
        }
      }
    } finally {
      await fetcher.close();
    }
  }
  const complete = [...pieces.values()]
    .filter((p) => p.got.size === p.parts)
    .sort((a, b) => (a.last < b.last ? 1 : -1));
  if (!complete.length)
    throw new DataError(
      `Kafka topic ${topic} holds no complete pgferry task record (offsets ${start} to ${end}): retention removed it, or something else writes the topic; replay needs the task's record, kept for as long as its table topics (retention.ms -1 on ${topic})`,
      { code: 'NO_TASK_RECORD' },
    );
  const p = complete[0];
  const body = Buffer.concat(Array.from({ length: p.parts }, (_, i) => p.got.get(i + 1)!));
  let raw: Omit<ReplayManifest, 'schema'> & { schema: { plan: SavedSchemaPlan; dump: string } | null };
  try {
    raw = JSON.parse(gunzipSync(body).toString('utf8'));
  } catch (err) {
    throw new DataError(`Kafka topic ${topic}: the task record does not decode (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (raw.format !== 1)
    throw new ObjectError(
      `Kafka topic ${topic}: the task record has format ${String(raw.format)}, which this pgferry does not read; use the pgferry that wrote it`,
    );
  return {
    ...raw,
    schema: raw.schema && { plan: raw.schema.plan, dump: Buffer.from(raw.schema.dump, 'base64') },
  };
}
