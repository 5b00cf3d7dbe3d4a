import {
  ConnectionError,
  lz4IsNative,
  PgferryError,
  RetryDeadlineError,
  retry,
  SlabPool,
} from '@pgferry/core';
import {
  ApiKey,
  encodeHeaders,
  PartitionRecords,
  planBatch,
  writeRecordBatchInto,
  type BatchProducer,
  type ProducePartitionResponse,
  type RecordHeader,
} from '@pgferry/kafka-protocol';
import type { FramedBatch } from './framed-batches';
import { KafkaCluster } from './kafka-cluster';
import type { KafkaClientConfig } from './kafka-config';
import { classifyKafkaError, kafkaError, missingTopic } from './kafka-errors';
import { keyPartition } from './kafka-partitioner';

export interface ProducerOptions {
  /**
   * Largest record batch sent to one partition in one request. Kafka refuses a batch above the
   * topic's max.message.bytes (1048588 by default) with MESSAGE_TOO_LARGE, so stay below it.
   */
  maxBatchBytes?: number;
  /** Retriable failures (leader moved, connection lost, timeouts) are retried until this passes. */
  retryDeadlineMs?: number;
  /** How long the broker may wait for the replicas (acks=all) before answering with a timeout. */
  produceTimeoutMs?: number;
  /**
   * Compression of the framed batches (publishBatches; Kafka's compression.type): lz4 where
   * lz4IsNative, else they go uncompressed. Other batches go uncompressed.
   */
  framedCompression?: 'none' | 'lz4';
}

/** A record to publish: its partition is its own, else its key's (keyPartition), else round robin. */
export interface ProducerRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: readonly RecordHeader[];
  partition?: number;
}

/** DUPLICATE_SEQUENCE_NUMBER: Kafka already holds the batch (an earlier attempt got through). */
const DUPLICATE_SEQUENCE = 46;
/** acks=-1 (all): the leader answers once every in-sync replica has the batch. */
const ACKS_ALL = -1;
/** Sequences are non-negative int32 and wrap from 2^31 - 1 to 0, as Kafka's do. */
const SEQUENCE_MODULUS = 2 ** 31;
/** Produce v3 is the first with record batches v2 (Kafka 0.11). */
const PRODUCE_MIN_VERSION = 3;

/**
 * One batch of one partition: its bytes are written once, when first sent, and the same bytes
 * go out on every retry, so Kafka's sequence check drops a copy it already holds.
 */
interface PendingBatch {
  topic: string;
  partition: number;
  count: number;
  bytes(): Buffer;
  /** Gives the batch's buffer back once Kafka acknowledged it. */
  release(): void;
}

/** The batches of one partition, in order: `take` gives the next one for these producer fields. */
interface BatchCursor {
  topic: string;
  partition: number;
  take(producer: BatchProducer, timestampMs: number): PendingBatch | null;
}

/**
 * An idempotent Kafka producer of record batches it writes itself (kafka-protocol's writer),
 * for every record pgferry sends: snapshot rows (framed batches, written as they are encoded),
 * changes, transaction and heartbeat records, dead letters. Guarantees, per publish call:
 *   - acks=all, and it resolves only after Kafka acknowledged every record;
 *   - per partition, records are stored in the order given, each exactly once: every batch has
 *     this producer's id, epoch and the partition's next sequence, a retried batch is sent with
 *     the same bytes, and Kafka drops it as a duplicate if an earlier attempt was stored;
 *   - retriable errors (NOT_LEADER_OR_FOLLOWER, lost connections, timeouts, ...) read the
 *     metadata again and are retried until `retryDeadlineMs`; other errors reject with a
 *     PgferryError naming the topic and partition.
 * Calls are serialized. After a failed call the producer takes a new producer id on the next
 * one, since Kafka's sequence state for the old one is no longer known.
 */
export class KafkaProducer {
  private readonly cluster: KafkaCluster;
  readonly maxBatchBytes: number;
  private readonly retryDeadlineMs: number;
  private readonly produceTimeoutMs: number;
  private readonly compressFramed: boolean;
  private producer: { id: bigint; epoch: number } | null = null;
  /** Next sequence per "topic\0partition" for the current producer id. */
  private readonly sequences = new Map<string, number>();
  private tail: Promise<unknown> = Promise.resolve();
  private connected = false;
  private roundRobin = 0;
  /** Why the last attempt left batches unsent, for the error if retrying gives up. */
  private lastError = '';
  /** Buffers of acknowledged batches, written again for later ones (external memory, see SlabPool). */
  private readonly buffers: SlabPool;

  constructor(config: KafkaClientConfig, options: ProducerOptions = {}) {
    this.cluster = new KafkaCluster(config);
    this.maxBatchBytes = options.maxBatchBytes ?? 1_000_000;
    this.retryDeadlineMs = options.retryDeadlineMs ?? 60_000;
    this.produceTimeoutMs = options.produceTimeoutMs ?? 30_000;
    this.compressFramed = options.framedCompression === 'lz4' && lz4IsNative;
    this.buffers = new SlabPool(this.maxBatchBytes, 8);
  }

  /** Connects to the cluster and takes a producer id. Idempotent. */
  async connect(): Promise<void> {
    if (this.connected) return;
    await this.retried('connecting the Kafka producer', () => this.cluster.connect());
    this.connected = true;
    await this.initProducer();
  }

  /** Partitions of `topic`; an ObjectError if the topic does not exist. */
  async partitionCount(topic: string): Promise<number> {
    const parts = this.cluster.partitions(topic) ?? (await this.cluster.describeTopics([topic])).get(topic)!;
    if (!parts.length) throw missingTopic(topic);
    return parts.length;
  }

  /**
   * Publishes records, partitioned by key (see ProducerRecord); resolves once all are
   * acknowledged, with the end offset (the next offset) each partition written to reached.
   */
  publish(topic: string, records: readonly ProducerRecord[]): Promise<Map<string, bigint>> {
    return this.publishAll([{ topic, records }]);
  }

  /** publish for the records of several topics at once: one request per leader for all of them. */
  async publishAll(
    items: ReadonlyArray<{ topic: string; records: readonly ProducerRecord[] }>,
  ): Promise<Map<string, bigint>> {
    const cursors: BatchCursor[] = [];
    for (const { topic, records } of items) {
      if (!records.length) continue;
      const n = await this.partitionCount(topic);
      const parts = new Map<number, PartitionRecords>();
      for (const r of records) {
        const partition =
          r.partition ?? (r.key ? keyPartition(r.key, n) : (this.roundRobin = (this.roundRobin + 1) % n));
        let p = parts.get(partition);
        if (!p) parts.set(partition, (p = new PartitionRecords(partition)));
        p.push(r.key, r.value, r.headers?.length ? encodeHeaders(r.headers) : null);
      }
      for (const p of parts.values()) cursors.push(this.recordsCursor(topic, p));
    }
    return this.enqueue(() => cursors);
  }

  /**
   * Publishes records already grouped by partition (the same partition choice as publish). A
   * partition's records go in batches of at most maxBatchBytes, one batch per partition per
   * request, the partitions of one leader in one request.
   */
  publishRecords(topic: string, parts: readonly PartitionRecords[]): Promise<Map<string, bigint>> {
    return this.enqueue(() => parts.filter((p) => p.length > 0).map((p) => this.recordsCursor(topic, p)));
  }

  /**
   * Publishes batches framed as they were encoded (PartitionedBatches): each is sent as it is,
   * in the order given per partition, with the same guarantees. Build them below the topic's
   * max.message.bytes.
   */
  publishBatches(topic: string, batches: readonly FramedBatch[]): Promise<Map<string, bigint>> {
    return this.publishFramed([{ topic, batches }]);
  }

  /** publishBatches for the batches of several topics at once (FramedRecords.take): one request per leader. */
  publishFramed(
    items: ReadonlyArray<{ topic: string; batches: readonly FramedBatch[] }>,
  ): Promise<Map<string, bigint>> {
    return this.enqueue(() =>
      items.flatMap(({ topic, batches }) => framedCursors(topic, batches, this.compressFramed)),
    );
  }

  async close(): Promise<void> {
    if (!this.connected) {
      await this.cluster.close();
      return;
    }
    this.connected = false;
    await this.tail;
    await this.cluster.close();
  }

  private recordsCursor(topic: string, records: PartitionRecords): BatchCursor {
    let next = 0;
    return {
      topic,
      partition: records.partition,
      take: (producer, timestampMs) => {
        if (next >= records.length) return null;
        const from = next;
        const { to, bytes } = planBatch(records, from, this.maxBatchBytes);
        next = to;
        let buf: Buffer | null = null;
        return {
          topic,
          partition: records.partition,
          count: to - from,
          bytes: () => {
            if (!buf) {
              buf = this.buffers.take(bytes);
              writeRecordBatchInto(records, from, to, bytes, producer, timestampMs, buf, 0);
            }
            return buf.subarray(0, bytes);
          },
          release: () => buf && this.buffers.give(buf),
        };
      },
    };
  }

  private enqueue(cursors: () => BatchCursor[]): Promise<Map<string, bigint>> {
    const run = this.tail.then(() => this.produceNow(cursors()));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async produceNow(cursors: BatchCursor[]): Promise<Map<string, bigint>> {
    if (!this.connected) throw new PgferryError('the Kafka producer is not connected');
    const ends = new Map<string, bigint>();
    for (const topic of new Set(cursors.map((c) => c.topic))) await this.partitionCount(topic);
    try {
      for (;;) {
        const producer = this.producer ?? (await this.initProducer());
        const now = Date.now();
        const round: PendingBatch[] = [];
        for (const c of cursors) {
          const baseSequence = this.sequences.get(`${c.topic}\0${c.partition}`) ?? 0;
          const batch = c.take({ producerId: producer.id, producerEpoch: producer.epoch, baseSequence }, now);
          if (batch) round.push(batch);
        }
        if (round.length === 0) return ends;
        await this.sendRound(round, ends);
      }
    } catch (err) {
      this.producer = null;
      this.sequences.clear();
      throw err;
    }
  }

  /** Sends one batch per partition until all are acknowledged or one fails for good. */
  private async sendRound(round: PendingBatch[], ends: Map<string, bigint>): Promise<void> {
    let pending = round;
    const where = () => `producing to Kafka ${describe(pending)}`;
    try {
      await retry(
        async () => {
          pending = await this.sendOnce(pending, ends);
          if (pending.length === 0) return;
          await this.cluster.refreshMetadata().catch((err) => (this.lastError = (err as Error).message));
          throw new ConnectionError(`${where()}: ${this.lastError}`);
        },
        { deadlineMs: this.retryDeadlineMs, initialDelayMs: 100, maxDelayMs: 5_000 },
      );
    } catch (err) {
      if (err instanceof RetryDeadlineError)
        throw new ConnectionError(`${where()}: ${err.message}`, { cause: err.cause });
      throw err;
    }
  }

  /** One request per leader; returns the batches to send again, throws on a fatal error. */
  private async sendOnce(batches: PendingBatch[], ends: Map<string, bigint>): Promise<PendingBatch[]> {
    const byLeader = new Map<number, PendingBatch[]>();
    const again: PendingBatch[] = [];
    for (const b of batches) {
      const leader = this.cluster.leader(b.topic, b.partition);
      if (leader < 0) {
        this.lastError = `no leader for ${b.topic} partition ${b.partition}`;
        again.push(b);
        continue;
      }
      const list = byLeader.get(leader);
      if (list) list.push(b);
      else byLeader.set(leader, [b]);
    }
    await Promise.all(
      [...byLeader].map(async ([leader, list]) => {
        const byTopic = new Map<string, PendingBatch[]>();
        for (const b of list) byTopic.set(b.topic, [...(byTopic.get(b.topic) ?? []), b]);
        let results: Map<string, ProducePartitionResponse[]>;
        try {
          const conn = await this.cluster.connection(leader);
          const res = await conn.request(
            ApiKey.Produce,
            {
              transactionalId: null,
              acks: ACKS_ALL,
              timeoutMs: this.produceTimeoutMs,
              topicData: [...byTopic].map(([name, bs]) => ({
                name,
                partitionData: bs.map((b) => ({ index: b.partition, records: b.bytes() })),
              })),
            },
            {
              version: conn.requireVersion(ApiKey.Produce, PRODUCE_MIN_VERSION),
              extraTimeoutMs: this.produceTimeoutMs,
            },
          );
          results = new Map(res.responses.map((r) => [r.name, r.partitionResponses]));
        } catch (err) {
          const e = classifyKafkaError(err, `producing to Kafka ${describe(list)}`);
          if (!(e instanceof PgferryError) || !e.retriable) throw e;
          this.lastError = e.message;
          again.push(...list);
          return;
        }
        for (const b of list) {
          const r = results.get(b.topic)?.find((x) => x.index === b.partition);
          const where = `producing to Kafka topic ${b.topic} partition ${b.partition}`;
          if (!r) {
            this.lastError = `the response has no result for ${b.topic} partition ${b.partition}`;
            again.push(b);
          } else if (r.errorCode === 0 || r.errorCode === DUPLICATE_SEQUENCE) {
            const key = `${b.topic}\0${b.partition}`;
            this.sequences.set(key, ((this.sequences.get(key) ?? 0) + b.count) % SEQUENCE_MODULUS);
            // A duplicate's base offset is the original batch's (KIP-98), -1 when the broker no longer knows it.
            if (r.baseOffset >= 0n) {
              const end = r.baseOffset + BigInt(b.count);
              const k = `${b.topic}:${b.partition}`;
              if (end > (ends.get(k) ?? -1n)) ends.set(k, end);
            }
            b.release();
          } else {
            const detail = [
              r.errorMessage,
              ...r.recordErrors.map((e) => `record ${e.batchIndex}: ${e.batchIndexErrorMessage ?? ''}`),
            ]
              .filter(Boolean)
              .join('; ');
            const e = kafkaError(r.errorCode, where, detail || null);
            if (!e.retriable) throw e;
            this.lastError = e.message;
            again.push(b);
          }
        }
      }),
    );
    return again;
  }

  private async initProducer(): Promise<{ id: bigint; epoch: number }> {
    const result = await this.retried('taking a Kafka producer id', async () => {
      const conn = await this.cluster.anyConnection();
      const res = await conn.request(ApiKey.InitProducerId, {
        transactionalId: null,
        transactionTimeoutMs: 60_000,
      });
      if (res.errorCode !== 0) throw kafkaError(res.errorCode, 'taking a Kafka producer id');
      return res;
    });
    this.producer = { id: result.producerId, epoch: result.producerEpoch };
    this.sequences.clear();
    return this.producer;
  }

  /** `fn` with retriable errors retried (metadata read again in between) until the deadline. */
  private retried<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(
      async () => {
        try {
          return await fn();
        } catch (err) {
          const e = classifyKafkaError(err, what);
          if (e instanceof PgferryError && e.retriable)
            await this.cluster.refreshMetadata().catch(() => undefined);
          throw e;
        }
      },
      { deadlineMs: this.retryDeadlineMs, initialDelayMs: 100, maxDelayMs: 5_000 },
    ).catch((err) => {
      throw err instanceof RetryDeadlineError
        ? new ConnectionError(`${what}: ${err.message}`, { cause: err.cause })
        : err;
    });
  }
}

/** "topic t partition 1, 2" for the batches of one request or round. */
function describe(batches: readonly PendingBatch[]): string {
  const byTopic = new Map<string, number[]>();
  for (const b of batches) byTopic.set(b.topic, [...(byTopic.get(b.topic) ?? []), b.partition]);
  return [...byTopic].map(([t, ps]) => `topic ${t} partition ${ps.join(', ')}`).join('; ');
}

function framedCursors(topic: string, batches: readonly FramedBatch[], compress: boolean): BatchCursor[] {
  const byPartition = new Map<number, FramedBatch[]>();
  for (const b of batches) {
    if (b.count === 0) continue;
    const list = byPartition.get(b.partition);
    if (list) list.push(b);
    else byPartition.set(b.partition, [b]);
  }
  return [...byPartition].map(([partition, list]) => ({
    topic,
    partition,
    take: (producer, timestampMs) => {
      const b = list.shift();
      if (!b) return null;
      if (compress) b.compress();
      let bytes: Buffer | null = null;
      return {
        topic,
        partition,
        count: b.count,
        bytes: () => (bytes ??= b.encode(producer, timestampMs)),
        // The caller gives the slabs back once the whole publish resolved (PartitionedBatches.release).
        release: () => undefined,
      };
    },
  }));
}
