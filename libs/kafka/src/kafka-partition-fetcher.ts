import type { Kafka } from 'kafkajs';
import { ConnectionError, ObjectError, PgferryError, sleep } from '@pgferry/core';
import {
  createCluster,
  fetchRequest,
  kafkaErrorCode,
  sendRequest,
  type KafkaJsCluster,
} from './kafkajs-transport';
import {
  FETCH_API_KEY,
  FETCH_VERSION,
  type FetchedPartition,
  type FetchPartition,
  scanBatches,
  visibleBatches,
  type BatchView,
} from '@pgferry/kafka-protocol';

export interface PartitionFetcherOptions {
  /** Longest a fetch waits for data when every partition is at its end. */
  maxWaitMs: number;
  /** Of records as the caller reads them: divided by the partition's expansion, if given. */
  maxBytesPerPartition: number;
  /** Per request (one request per leader per round), divided by the largest expansion asked. */
  maxBytes: number;
  /**
   * How many bytes of records (decompressed) a partition's fetched bytes are expected to hold,
   * at least 1: a compressed topic is fetched in fewer bytes, so that what a round holds once
   * decompressed stays within the limits above.
   */
  expansion?: (topic: string, partition: number) => number;
  /** Retriable failures (leader moved, connection lost) are retried until this passes. */
  retryDeadlineMs?: number;
}

/** What one round fetched of one partition: the visible batches from `from` on. */
export interface PartitionData {
  topic: string;
  partition: number;
  /** The first offset wanted: records before it in the first batch are not for this round. */
  from: bigint;
  /** Data batches only (no control batches, none of an aborted transaction), complete, in order. */
  batches: BatchView[];
  /** Where the next round starts: after every batch fetched, skipped ones included. */
  nextOffset: bigint;
  highWatermark: bigint;
}

/** OFFSET_OUT_OF_RANGE: the offset is below the log start or above the high watermark. */
const OFFSET_OUT_OF_RANGE = 1;

/**
 * Fetches the partitions of a fixed set of topics from explicit offsets, with Fetch requests
 * of its own on kafkajs' cluster and broker connections (TLS, SASL, metadata and leader lookup
 * are kafkajs'), and no consumer group: the caller owns the offsets (they live in the
 * destination) and must be the only reader of these partitions that acts on them.
 * Each `fetch` is one round, one request per leader; the offsets move past what it returns, so
 * the next round can be requested while the caller still works on this one. Not safe for
 * concurrent `fetch` calls.
 */
export class KafkaPartitionFetcher {
  private closed = false;
  private readonly cluster: KafkaJsCluster;
  private readonly offsets = new Map<string, Map<number, bigint>>();
  private readonly retryDeadlineMs: number;
  private failingSince: number | null = null;
  private round = 0;
  private lastError = '';

  constructor(
    kafka: Kafka,
    private readonly topics: readonly string[],
    private readonly options: PartitionFetcherOptions,
  ) {
    this.cluster = createCluster(kafka);
    this.retryDeadlineMs = options.retryDeadlineMs ?? 60_000;
  }

  /**
   * Connects and reads the topics' partitions; each starts at `start(topic, partition)` (the
   * next offset the caller has not applied yet).
   */
  async connect(start: (topic: string, partition: number) => bigint): Promise<void> {
    try {
      await this.cluster.connect();
      await this.cluster.addMultipleTargetTopics([...this.topics]);
    } catch (err) {
      if ((err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION')
        throw new ObjectError(
          `a Kafka topic of ${this.topics.join(', ')} does not exist: create the task's topics (pgferry migrate does) before the applier starts`,
          { cause: err },
        );
      throw new ConnectionError(
        `connecting to Kafka to fetch ${this.topics.join(', ')}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    for (const topic of this.topics) {
      const parts = this.cluster.findTopicPartitionMetadata(topic);
      if (parts.length === 0)
        throw new ObjectError(`Kafka topic ${topic} does not exist or has no partitions`);
      this.offsets.set(topic, new Map(parts.map((p) => [p.partitionId, start(topic, p.partitionId)])));
    }
  }

  async close(): Promise<void> {
    // A round still in flight must not reconnect after this (see refresh).
    this.closed = true;
    await this.cluster.disconnect();
  }

  /**
   * One round: every partition's next records, up to the byte limits, waiting at most maxWaitMs
   * when none has any. Partitions whose leader failed retriably are left for the next round
   * (after a metadata refresh); a fatal error, or retriable ones beyond retryDeadlineMs, rejects
   * with an error that names the topic and partition.
   */
  async fetch(): Promise<PartitionData[]> {
    if (this.closed) return [];
    let leaderless = false;
    const byLeader = new Map<string, Map<string, FetchPartition[]>>();
    // Kafka fills a response in request order until max_bytes: the partitions take turns at
    // the head, so that none waits behind busier ones.
    const all = [...this.offsets].flatMap(([topic, parts]) =>
      [...parts.keys()].map((p) => [topic, p] as const),
    );
    const turn = this.round++ % Math.max(1, all.length);
    let expansion = 1;
    for (const [topic, partition] of [...all.slice(turn), ...all.slice(0, turn)]) {
      const fetchOffset = this.offsets.get(topic)!.get(partition)!;
      const metadata = this.cluster.findTopicPartitionMetadata(topic);
      const leader = metadata.find((p) => p.partitionId === partition)?.leader;
      if (leader === undefined || leader === null || leader < 0) {
        // Counts as a failed round: the metadata is reloaded and the retry deadline runs, so a
        // partition without a leader is never skipped silently.
        this.lastError = `no leader for Kafka topic ${topic} partition ${partition}`;
        leaderless = true;
        continue;
      }
      const request = byLeader.get(String(leader)) ?? new Map<string, FetchPartition[]>();
      byLeader.set(String(leader), request);
      const list = request.get(topic) ?? [];
      request.set(topic, list);
      const grows = Math.max(1, this.options.expansion?.(topic, partition) ?? 1);
      expansion = Math.max(expansion, grows);
      list.push({ partition, fetchOffset, maxBytes: scaled(this.options.maxBytesPerPartition, grows) });
    }
    const out: PartitionData[] = [];
    let failed = byLeader.size === 0 || leaderless;
    await Promise.all(
      [...byLeader].map(async ([nodeId, request]) => {
        let response: Map<string, FetchedPartition[]>;
        try {
          const broker = await this.cluster.findBroker({ nodeId });
          const v = broker.versions?.[FETCH_API_KEY];
          if (v && (v.maxVersion < FETCH_VERSION || v.minVersion > FETCH_VERSION))
            throw new PgferryError(
              `Kafka broker ${nodeId} does not answer Fetch v${FETCH_VERSION} (it has v${v.minVersion}..v${v.maxVersion}); the snapshot applier needs Kafka 0.11 or later`,
            );
          response = await sendRequest(broker, fetchRequest(this.limits(expansion), request));
        } catch (err) {
          if (!isRetriableKafkaJsError(err)) throw asFatal([...request.keys()], err);
          this.lastError = `broker ${nodeId}: ${(err as Error).message}`;
          failed = true;
          return;
        }
        for (const [topic, parts] of response) {
          for (const p of parts) {
            const wanted = request.get(topic)?.find((x) => x.partition === p.partition);
            if (!wanted) continue;
            if (p.errorCode !== 0) {
              failed = true;
              this.partitionError(topic, p, wanted.fetchOffset);
              continue;
            }
            const where = `Kafka topic ${topic} partition ${p.partition}`;
            const all = scanBatches(p.records, where);
            // Nothing whole this round: the partition was past the request's byte budget; it
            // comes first in a later round, when Kafka sends its first batch whole (KIP-74).
            if (all.length === 0) continue;
            const nextOffset = all[all.length - 1].nextOffset;
            this.offsets.get(topic)!.set(p.partition, nextOffset);
            out.push({
              topic,
              partition: p.partition,
              from: wanted.fetchOffset,
              batches: visibleBatches(all, p.abortedTransactions),
              nextOffset,
              highWatermark: p.highWatermark,
            });
          }
        }
      }),
    );
    if (!failed || this.closed) {
      this.failingSince = null;
      return out;
    }
    const now = Date.now();
    this.failingSince ??= now;
    if (now - this.failingSince > this.retryDeadlineMs)
      throw new ConnectionError(
        `fetching ${this.topics.join(', ')} failed for ${Math.round((now - this.failingSince) / 1000)} s: ${this.lastError}`,
      );
    await this.refresh();
    if (out.length === 0) await sleep(Math.min(1000, 50 + (now - this.failingSince) / 4));
    return out;
  }

  private limits(expansion: number) {
    return {
      maxWaitMs: this.options.maxWaitMs,
      minBytes: 1,
      maxBytes: scaled(this.options.maxBytes, expansion),
    };
  }

  private partitionError(topic: string, p: FetchedPartition, offset: bigint): void {
    const e = kafkaErrorCode(p.errorCode);
    const where = `Kafka topic ${topic} partition ${p.partition}`;
    if (p.errorCode === OFFSET_OUT_OF_RANGE)
      throw new ObjectError(
        `${where}: offset ${offset} (where the destination's pgferry.offsets resume, or 0 when nothing was applied yet) is out of range (high watermark ${p.highWatermark}); the topic's records were deleted (retention) or the topic recreated before they were applied: start the task again on an empty destination`,
        { code: e.type },
      );
    if (!e.retriable) throw new PgferryError(`fetching ${where}: ${e.type}: ${e.message}`, { code: e.type });
    this.lastError = `${where}: ${e.type}`;
  }

  /** After a retriable failure: reconnect if every broker is gone, then reload the metadata. */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.cluster.isConnected()) await this.cluster.connect();
      await this.cluster.refreshMetadata();
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }
}

/** kafkajs' connection and protocol errors carry `retriable`; anything else is not retried. */
function isRetriableKafkaJsError(err: unknown): boolean {
  return (
    err instanceof Error &&
    err.name.startsWith('KafkaJS') &&
    (err as { retriable?: boolean }).retriable === true
  );
}

function asFatal(topics: string[], err: unknown): unknown {
  if (err instanceof PgferryError || !(err instanceof Error) || !err.name.startsWith('KafkaJS')) return err;
  return new PgferryError(`fetching Kafka topics ${topics.join(', ')}: ${err.message}`, { cause: err });
}

/** The smallest byte limit a fetch asks for (Kafka sends a partition's first batch whole anyway). */
const MIN_FETCH_BYTES = 16 * 1024;

function scaled(limit: number, expansion: number): number {
  return Math.max(MIN_FETCH_BYTES, Math.floor(limit / expansion));
}
