import type { Kafka } from 'kafkajs';
import {
  ConnectionError,
  lz4IsNative,
  ObjectError,
  PgferryError,
  RetryDeadlineError,
  retry,
} from '@pgferry/core';
import type { FramedBatch } from './framed-batches';
import {
  createCluster,
  kafkaErrorCode,
  produceFramed,
  sendFramed,
  type KafkaJsBroker,
  type KafkaJsCluster,
} from './kafkajs-transport';
import {
  PRODUCE_API_KEY,
  PRODUCE_MAX_VERSION,
  PRODUCE_MIN_VERSION,
  type BatchSource,
  type PartitionResult,
  planBatch,
  writeRecordBatchInto,
  type BatchProducer,
  type PartitionRecords,
} from '@pgferry/kafka-protocol';

export interface BatchProducerOptions {
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
   * Compression of the framed batches (produceBatches; Kafka's compression.type): lz4 where
   * lz4IsNative, else they go uncompressed. produce's batches go uncompressed.
   */
  framedCompression?: 'none' | 'lz4';
}

/** DUPLICATE_SEQUENCE_NUMBER: Kafka already holds the batch (an earlier attempt got through). */
const DUPLICATE_SEQUENCE = 46;
/** acks=-1 (all): the leader answers once every in-sync replica has the batch. */
const ACKS_ALL = -1;
/** Sequences are non-negative int32 and wrap from 2^31 - 1 to 0, as Kafka's do. */
const SEQUENCE_MODULUS = 2 ** 31;

/**
 * One batch of one partition. Its bytes are written once, into the first request that carries it
 * (no buffer of its own); a retry sends those same bytes again.
 */
class PendingBatch implements BatchSource {
  private written: Buffer | null = null;

  constructor(
    readonly partition: number,
    readonly count: number,
    readonly bytes: number,
    private readonly write: (dst: Buffer, pos: number) => void,
  ) {}

  writeInto(dst: Buffer, pos: number): void {
    if (this.written) {
      this.written.copy(dst, pos);
      return;
    }
    this.write(dst, pos);
    this.written = dst.subarray(pos, pos + this.bytes);
  }
}

/** The batches of one partition, in order: `take` gives the next one for these producer fields. */
interface BatchCursor {
  partition: number;
  take(producer: BatchProducer, timestampMs: number): PendingBatch | null;
}

function recordsCursor(records: PartitionRecords, maxBytes: number): BatchCursor {
  let next = 0;
  return {
    partition: records.partition,
    take: (producer, timestampMs) => {
      if (next >= records.length) return null;
      const from = next;
      const { to, bytes } = planBatch(records, from, maxBytes);
      next = to;
      return new PendingBatch(records.partition, to - from, bytes, (dst, pos) =>
        writeRecordBatchInto(records, from, to, bytes, producer, timestampMs, dst, pos),
      );
    },
  };
}

function framedCursors(batches: readonly FramedBatch[], compress: boolean): BatchCursor[] {
  const byPartition = new Map<number, FramedBatch[]>();
  for (const b of batches) {
    if (b.count === 0) continue;
    const list = byPartition.get(b.partition) ?? [];
    list.push(b);
    byPartition.set(b.partition, list);
  }
  return [...byPartition].map(([partition, list]) => ({
    partition,
    take: (producer, timestampMs) => {
      const b = list.shift();
      if (b && compress) b.compress();
      return b
        ? new PendingBatch(partition, b.count, b.wireBytes, (dst, pos) =>
            b.writeInto(dst, pos, producer, timestampMs),
          )
        : null;
    },
  }));
}

interface Producer {
  id: bigint;
  epoch: number;
}

/**
 * An idempotent Kafka producer that sends record batches it encodes itself (record-batch-writer)
 * through kafkajs' cluster and broker connections, so TLS, SASL, metadata and leader lookup are
 * kafkajs'. Guarantees, per `produce` call:
 *   - acks=all, and it resolves only after Kafka acknowledged every record;
 *   - per partition, records are stored in the order given, each exactly once: every batch has
 *     this producer's id, epoch and the partition's next sequence, a retried batch is sent with
 *     the same bytes, and Kafka drops it as a duplicate if an earlier attempt was stored;
 *   - retriable errors (NOT_LEADER_FOR_PARTITION, lost connections, timeouts, ...) refresh the
 *     metadata and are retried until `retryDeadlineMs`; other errors reject with a PgferryError
 *     naming the topic and partition.
 * Calls are serialized. After a failed call the producer takes a new producer id on the next
 * one, since Kafka's sequence state for the old one is no longer known.
 */
export class KafkaBatchProducer {
  private readonly cluster: KafkaJsCluster;
  /** The largest batch this producer sends (see BatchProducerOptions.maxBatchBytes). */
  readonly maxBatchBytes: number;
  private readonly retryDeadlineMs: number;
  private readonly produceTimeoutMs: number;
  private readonly compressFramed: boolean;
  private producer: Producer | null = null;
  /** Next sequence per "topic\0partition" for the current producer id. */
  private readonly sequences = new Map<string, number>();
  private readonly topics = new Set<string>();
  private tail: Promise<unknown> = Promise.resolve();
  private connected = false;
  /** Why the last attempt left batches unsent, for the error if retrying gives up. */
  private lastError = '';
  /**
   * The buffer of a request whose batches were all acknowledged: nothing reads it any more (a
   * response means the request was written out, and no batch in it is sent again), so the next
   * request is written into it instead of a new ~1 MB buffer of external memory.
   */
  private spareFrame: Buffer | null = null;

  constructor(kafka: Kafka, options: BatchProducerOptions = {}) {
    this.cluster = createCluster(kafka);
    this.maxBatchBytes = options.maxBatchBytes ?? 1_000_000;
    this.retryDeadlineMs = options.retryDeadlineMs ?? 60_000;
    this.produceTimeoutMs = options.produceTimeoutMs ?? 30_000;
    this.compressFramed = options.framedCompression === 'lz4' && lz4IsNative;
  }

  /** Connects to the cluster and takes a producer id. Idempotent. */
  async connect(): Promise<void> {
    if (this.connected) return;
    try {
      await this.cluster.connect();
      this.connected = true;
      await this.initProducer();
    } catch (err) {
      throw asConnectionError('connecting the Kafka producer', err);
    }
  }

  /** Partitions of `topic`, from metadata; an ObjectError if the topic does not exist. */
  async partitionCount(topic: string): Promise<number> {
    if (!this.topics.has(topic)) {
      try {
        await this.cluster.addMultipleTargetTopics([topic]);
      } catch (err) {
        if ((err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION')
          throw new ObjectError(`Kafka topic ${topic} does not exist`, { cause: err });
        throw asConnectionError(`reading the metadata of Kafka topic ${topic}`, err);
      }
      this.topics.add(topic);
    }
    const n = this.cluster.findTopicPartitionMetadata(topic).length;
    if (n === 0) throw new ObjectError(`Kafka topic ${topic} does not exist`);
    return n;
  }

  /**
   * Stores every record of `parts` in its partition of `topic` (see the class comment for the
   * guarantees). A partition's records go in batches of at most maxBatchBytes, one batch per
   * partition per request, the partitions of one leader in one request.
   */
  produce(topic: string, parts: readonly PartitionRecords[]): Promise<void> {
    return this.enqueue(topic, () =>
      parts.filter((p) => p.length > 0).map((p) => recordsCursor(p, this.maxBatchBytes)),
    );
  }

  /**
   * produce for batches framed as they were encoded (PartitionedBatches): each is sent as it is,
   * in the order given per partition, with the same guarantees. A batch above the topic's
   * max.message.bytes is refused by Kafka, so build them below it.
   */
  produceBatches(topic: string, batches: readonly FramedBatch[]): Promise<void> {
    return this.enqueue(topic, () => framedCursors(batches, this.compressFramed));
  }

  private enqueue(topic: string, cursors: () => BatchCursor[]): Promise<void> {
    const run = this.tail.then(() => this.produceNow(topic, cursors()));
    this.tail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    await this.tail;
    await this.cluster.disconnect();
  }

  private async produceNow(topic: string, cursors: BatchCursor[]): Promise<void> {
    if (!this.connected) throw new PgferryError('the Kafka producer is not connected');
    await this.partitionCount(topic);
    try {
      for (;;) {
        const producer = this.producer ?? (await this.initProducer());
        const now = Date.now();
        const round: PendingBatch[] = [];
        for (const c of cursors) {
          const baseSequence = this.sequences.get(`${topic}\0${c.partition}`) ?? 0;
          const batch = c.take({ producerId: producer.id, producerEpoch: producer.epoch, baseSequence }, now);
          if (batch) round.push(batch);
        }
        if (round.length === 0) return;
        await this.sendRound(topic, round);
      }
    } catch (err) {
      this.producer = null;
      this.sequences.clear();
      throw err;
    }
  }

  /** Sends one batch per partition until all are acknowledged or one fails for good. */
  private async sendRound(topic: string, round: PendingBatch[]): Promise<void> {
    let pending = round;
    try {
      await retry(
        async () => {
          pending = await this.sendOnce(topic, pending);
          if (pending.length === 0) return;
          await this.refresh();
          throw new ConnectionError(
            `producing to Kafka topic ${topic} partition ${pending.map((b) => b.partition).join(', ')}: ${this.lastError}`,
          );
        },
        { deadlineMs: this.retryDeadlineMs, initialDelayMs: 100, maxDelayMs: 5_000 },
      );
    } catch (err) {
      if (err instanceof RetryDeadlineError)
        throw new ConnectionError(
          `producing to Kafka topic ${topic} partition ${pending.map((b) => b.partition).join(', ')}: ${err.message}`,
          { cause: err.cause },
        );
      throw err;
    }
  }

  /** One request per leader; returns the batches to send again, throws on a fatal error. */
  private async sendOnce(topic: string, batches: PendingBatch[]): Promise<PendingBatch[]> {
    const byLeader = new Map<string, PendingBatch[]>();
    const again: PendingBatch[] = [];
    const metadata = this.cluster.findTopicPartitionMetadata(topic);
    for (const b of batches) {
      const leader = metadata.find((p) => p.partitionId === b.partition)?.leader;
      if (leader === undefined || leader === null || leader < 0) {
        this.lastError = `no leader for partition ${b.partition}`;
        again.push(b);
        continue;
      }
      const list = byLeader.get(String(leader)) ?? [];
      list.push(b);
      byLeader.set(String(leader), list);
    }
    await Promise.all(
      [...byLeader].map(async ([nodeId, list]) => {
        let results: PartitionResult[];
        let frame: Buffer | null = null;
        try {
          const broker = await this.cluster.findBroker({ nodeId });
          const request = produceFramed(
            produceVersion(broker),
            ACKS_ALL,
            this.produceTimeoutMs,
            topic,
            list,
            (bytes) => {
              const spare = this.spareFrame;
              this.spareFrame = null;
              // Some room to spare, so that the next request of about the same size fits.
              frame = spare && spare.length >= bytes ? spare : Buffer.allocUnsafe(bytes + (bytes >> 3));
              return frame.subarray(0, bytes);
            },
          );
          results = (await sendFramed(broker, request)).get(topic) ?? [];
        } catch (err) {
          if (!isRetriableKafkaJsError(err)) throw asFatal(topic, list, err);
          this.lastError = (err as Error).message;
          again.push(...list);
          return;
        }
        for (const b of list) {
          const r = results.find((x) => x.partition === b.partition);
          if (!r) {
            this.lastError = `the response has no result for partition ${b.partition}`;
            again.push(b);
          } else if (r.errorCode === 0 || r.errorCode === DUPLICATE_SEQUENCE) {
            const key = `${topic}\0${b.partition}`;
            this.sequences.set(key, ((this.sequences.get(key) ?? 0) + b.count) % SEQUENCE_MODULUS);
          } else {
            const e = kafkaErrorCode(r.errorCode);
            const text = `${e.type}: ${r.errorMessage ?? e.message}`;
            if (!e.retriable)
              throw new PgferryError(`producing to Kafka topic ${topic} partition ${b.partition}: ${text}`, {
                code: e.type,
              });
            this.lastError = `partition ${b.partition}: ${text}`;
            again.push(b);
          }
        }
        if (frame && !list.some((b) => again.includes(b))) this.spareFrame = frame;
      }),
    );
    return again;
  }

  /** After a retriable failure: reconnect if every broker is gone, then reload the metadata. */
  private async refresh(): Promise<void> {
    try {
      if (!this.cluster.isConnected()) await this.cluster.connect();
      await this.cluster.refreshMetadata();
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }

  private async initProducer(): Promise<Producer> {
    const result = await retry(
      async () => {
        try {
          const broker = await this.cluster.findControllerBroker();
          return await broker.initProducerId({ transactionTimeout: 30_000 });
        } catch (err) {
          if (isRetriableKafkaJsError(err)) {
            await this.refresh();
            throw asConnectionError('taking a Kafka producer id', err);
          }
          throw err;
        }
      },
      { deadlineMs: this.retryDeadlineMs, initialDelayMs: 100, maxDelayMs: 5_000 },
    );
    this.producer = { id: BigInt(result.producerId), epoch: result.producerEpoch };
    this.sequences.clear();
    return this.producer;
  }
}

function produceVersion(broker: KafkaJsBroker): number {
  const v = broker.versions?.[PRODUCE_API_KEY];
  if (!v || v.maxVersion < PRODUCE_MIN_VERSION)
    throw new PgferryError(
      `Kafka broker ${broker.nodeId} does not support Produce v${PRODUCE_MIN_VERSION} (record batches v2, Kafka 0.11 or later)`,
    );
  return Math.min(v.maxVersion, PRODUCE_MAX_VERSION);
}

/** kafkajs' connection and protocol errors carry `retriable`; anything else is not retried. */
function isRetriableKafkaJsError(err: unknown): boolean {
  return (
    err instanceof Error &&
    err.name.startsWith('KafkaJS') &&
    (err as { retriable?: boolean }).retriable === true
  );
}

function asConnectionError(what: string, err: unknown): PgferryError {
  if (err instanceof PgferryError) return err;
  return new ConnectionError(`${what}: ${(err as Error).message}`, { cause: err });
}

function asFatal(topic: string, batches: PendingBatch[], err: unknown): unknown {
  if (err instanceof PgferryError || !(err instanceof Error) || !err.name.startsWith('KafkaJS')) return err;
  return new PgferryError(
    `producing to Kafka topic ${topic} partition ${batches.map((b) => b.partition).join(', ')}: ${err.message}`,
    { cause: err },
  );
}
