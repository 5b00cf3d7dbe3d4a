import {
  ConnectionError,
  ObjectError,
  PgferryError,
  RetryDeadlineError,
  RetryStreak,
  sleep,
} from '@pgferry/core';
import {
  ApiKey,
  scanBatches,
  visibleBatches,
  type BatchView,
  type FetchPartitionResponse,
  type FetchRequest,
} from '@pgferry/kafka-protocol';
import { KafkaAdmin } from './kafka-admin';
import { KafkaCluster } from './kafka-cluster';
import type { KafkaClientConfig } from './kafka-config';
import { classifyKafkaError, kafkaError } from './kafka-errors';

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
 * Fetches partitions from explicit offsets, one Fetch request per leader per round (on the
 * connection's fetch lane, read_committed), and no consumer group: the caller owns the offsets
 * (they live in the destination) and decides which partitions are its own (all of the topics,
 * or what a consumer group assigned: `assign`).
 * Each `fetch` is one round, one request per leader; the offsets move past what it returns, so
 * the next round can be requested while the caller still works on this one. Not safe for
 * concurrent `fetch` calls.
 */
export class KafkaPartitionFetcher {
  private closed = false;
  private readonly cluster: KafkaCluster;
  /** The next offset per partition this fetcher reads, per topic. */
  private readonly offsets = new Map<string, Map<number, bigint>>();
  private readonly paused = new Set<string>();
  /** Rounds that failed in a row (a partition without a leader, a broker lost): their deadline and backoff. */
  private readonly failures: RetryStreak;
  private round = 0;
  private lastError = '';

  constructor(
    config: KafkaClientConfig,
    private readonly options: PartitionFetcherOptions,
  ) {
    this.cluster = new KafkaCluster(config);
    this.failures = new RetryStreak({
      deadlineMs: options.retryDeadlineMs ?? 60_000,
      initialDelayMs: 50,
      maxDelayMs: 1000,
      // A failed round's error is a ConnectionError made here: retried until the deadline.
      shouldRetry: () => true,
    });
  }

  /** The cluster's id, once connected (for the run identity checks). */
  get clusterId(): string | null {
    return this.cluster.clusterId;
  }

  /**
   * Connects and reads every partition of `topics`, each from `start(topic, partition)` (the
   * next offset the caller has not applied yet). ObjectError when a topic does not exist.
   */
  async connect(
    topics: readonly string[],
    start: (topic: string, partition: number) => bigint,
  ): Promise<void> {
    const described = await this.describe(topics);
    for (const [topic, parts] of described)
      this.offsets.set(topic, new Map(parts.map((p) => [p.partition, start(topic, p.partition)])));
  }

  /** The partitions of `topics` (for an assignor), connecting if needed. */
  async describe(topics: readonly string[]): Promise<Map<string, Array<{ partition: number }>>> {
    try {
      await this.cluster.connect();
      return await this.cluster.describeTopics(topics);
    } catch (err) {
      throw classifyKafkaError(err, `connecting to Kafka to fetch ${topics.join(', ')}`);
    }
  }

  /**
   * Reads exactly these partitions from now on, each from its offset (a consumer group's new
   * assignment): partitions not listed are dropped. A round in flight still returns what it
   * fetched; callers drop what is no longer theirs.
   */
  assign(partitions: ReadonlyArray<{ topic: string; partition: number; offset: bigint }>): void {
    this.offsets.clear();
    this.paused.clear();
    for (const p of partitions) {
      const m = this.offsets.get(p.topic) ?? new Map<number, bigint>();
      this.offsets.set(p.topic, m);
      m.set(p.partition, p.offset);
    }
  }

  /** The partitions read, as "topic:partition". */
  get assigned(): string[] {
    return [...this.offsets].flatMap(([t, parts]) => [...parts.keys()].map((p) => `${t}:${p}`));
  }

  /** Stops fetching a partition until `resume` (the caller holds enough of it). */
  pause(topic: string, partition: number): void {
    this.paused.add(`${topic}:${partition}`);
  }

  resume(topic: string, partition: number): void {
    this.paused.delete(`${topic}:${partition}`);
  }

  /** Reads a partition from `offset` on, from the next round (after a rewind, or new to this fetcher). */
  seek(topic: string, partition: number, offset: bigint): void {
    const m = this.offsets.get(topic) ?? new Map<number, bigint>();
    this.offsets.set(topic, m);
    m.set(partition, offset);
  }

  async close(): Promise<void> {
    // A round still in flight must not reconnect after this (see refresh).
    this.closed = true;
    await this.cluster.close();
  }

  /**
   * One round: every partition's next records, up to the byte limits, waiting at most maxWaitMs
   * when none has any. Partitions whose leader failed retriably are left for the next round
   * (after a metadata refresh); a fatal error, or retriable ones beyond retryDeadlineMs, rejects
   * with an error that names the topic and partition. Paused partitions are not fetched; with
   * none to fetch, a round waits maxWaitMs and returns nothing.
   */
  async fetch(): Promise<PartitionData[]> {
    if (this.closed) return [];
    let leaderless = false;
    const byLeader = new Map<number, Map<string, FetchRequest['topics'][number]['partitions']>>();
    // Kafka fills a response in request order until max_bytes: the partitions take turns at
    // the head, so that none waits behind busier ones.
    const all = [...this.offsets]
      .flatMap(([topic, parts]) => [...parts.keys()].map((p) => [topic, p] as const))
      .filter(([t, p]) => !this.paused.has(`${t}:${p}`));
    if (all.length === 0) {
      await sleep(this.options.maxWaitMs);
      return [];
    }
    const turn = this.round++ % all.length;
    let expansion = 1;
    for (const [topic, partition] of [...all.slice(turn), ...all.slice(0, turn)]) {
      const fetchOffset = this.offsets.get(topic)!.get(partition)!;
      const leader = this.cluster.leader(topic, partition);
      if (leader < 0) {
        // Counts as a failed round: the metadata is reloaded and the retry deadline runs, so a
        // partition without a leader is never skipped silently.
        this.lastError = `no leader for Kafka topic ${topic} partition ${partition}`;
        leaderless = true;
        continue;
      }
      const request = byLeader.get(leader) ?? new Map();
      byLeader.set(leader, request);
      const list = request.get(topic) ?? [];
      request.set(topic, list);
      const grows = Math.max(1, this.options.expansion?.(topic, partition) ?? 1);
      expansion = Math.max(expansion, grows);
      list.push({
        partition,
        currentLeaderEpoch: -1,
        fetchOffset,
        logStartOffset: -1n,
        partitionMaxBytes: scaled(this.options.maxBytesPerPartition, grows),
      });
    }
    const out: PartitionData[] = [];
    let failed = byLeader.size === 0 || leaderless;
    await Promise.all(
      [...byLeader].map(async ([leader, request]) => {
        let responses: Array<{ topic: string; partitions: FetchPartitionResponse[] }>;
        try {
          const conn = await this.cluster.connection(leader, 'fetch');
          const res = await conn.request(
            ApiKey.Fetch,
            {
              replicaId: -1,
              maxWaitMs: this.options.maxWaitMs,
              minBytes: 1,
              maxBytes: scaled(this.options.maxBytes, expansion),
              isolationLevel: READ_COMMITTED,
              sessionId: 0,
              sessionEpoch: -1,
              topics: [...request].map(([topic, partitions]) => ({ topic, partitions })),
              forgottenTopicsData: [],
              rackId: '',
            },
            {
              version: conn.requireVersion(ApiKey.Fetch, FETCH_MIN_VERSION),
              extraTimeoutMs: this.options.maxWaitMs,
            },
          );
          if (res.errorCode !== 0) throw kafkaError(res.errorCode, `fetching from Kafka broker ${leader}`);
          responses = res.responses;
        } catch (err) {
          const e = classifyKafkaError(
            err,
            `fetching ${[...request.keys()].join(', ')} from Kafka broker ${leader}`,
          );
          if (!(e instanceof PgferryError) || !e.retriable) throw e;
          this.lastError = e.message;
          failed = true;
          return;
        }
        for (const { topic, partitions } of responses) {
          for (const p of partitions) {
            const wanted = request.get(topic)?.find((x) => x.partition === p.partitionIndex);
            if (!wanted) continue;
            if (p.errorCode !== 0) {
              failed = true;
              await this.partitionError(topic, p, wanted.fetchOffset);
              continue;
            }
            // The partition was reassigned, paused or sought while this round was in flight.
            if (this.offsets.get(topic)?.get(p.partitionIndex) !== wanted.fetchOffset) continue;
            const where = `Kafka topic ${topic} partition ${p.partitionIndex}`;
            const batches = scanBatches(p.records ?? EMPTY, where);
            // Nothing whole this round: the partition was past the request's byte budget; it
            // comes first in a later round, when Kafka sends its first batch whole (KIP-74).
            if (batches.length === 0) continue;
            const nextOffset = batches[batches.length - 1].nextOffset;
            this.offsets.get(topic)!.set(p.partitionIndex, nextOffset);
            out.push({
              topic,
              partition: p.partitionIndex,
              from: wanted.fetchOffset,
              batches: visibleBatches(batches, p.abortedTransactions ?? []),
              nextOffset,
              highWatermark: p.highWatermark,
            });
          }
        }
      }),
    );
    if (!failed || this.closed) {
      this.failures.succeeded();
      return out;
    }
    let delayMs: number;
    try {
      delayMs = this.failures.failed(
        new ConnectionError(`fetching ${[...this.offsets.keys()].join(', ')}: ${this.lastError}`),
      );
    } catch (e) {
      if (!(e instanceof RetryDeadlineError)) throw e;
      throw new ConnectionError(
        `fetching ${[...this.offsets.keys()].join(', ')} failed for ${Math.round(e.elapsedMs / 1000)} s: ${this.lastError}`,
      );
    }
    await this.refresh();
    // Partitions that fetched go on at once; with nothing to return, wait before the next round.
    if (out.length === 0) await sleep(delayMs);
    return out;
  }

  private async partitionError(topic: string, p: FetchPartitionResponse, offset: bigint): Promise<void> {
    const where = `Kafka topic ${topic} partition ${p.partitionIndex}`;
    if (p.errorCode === OFFSET_OUT_OF_RANGE) {
      // Kafka 4 answers an out-of-range fetch without the partition's bounds: ask for them.
      const key = `${topic}:${p.partitionIndex}`;
      const admin = new KafkaAdmin(this.cluster);
      const [start, end] = await Promise.all([admin.topicStarts([topic]), admin.topicEnds([topic])]).then(
        ([s, e]) => [s.get(key), e.get(key)],
        () => [
          p.logStartOffset >= 0n ? p.logStartOffset : undefined,
          p.highWatermark >= 0n ? p.highWatermark : undefined,
        ],
      );
      const gap = start !== undefined && offset < start;
      throw new ObjectError(
        gap
          ? `${where}: the next record needed is at offset ${offset}, but the log starts at offset ${start} (it holds ${start} to ${end ?? '?'}): records ${offset} to ${start - 1n} were deleted (retention, or DeleteRecords) before they were applied, and pgferry does not skip them; the task cannot go on from this topic: start the task afresh into an empty destination (a new run), and keep the topics' retention longer than the applier may be stopped`
          : `${where}: the next record needed is at offset ${offset}, outside what the partition holds (${start ?? '?'} to ${end ?? '?'}): the topic was recreated or truncated since the offset was stored; the task cannot go on from this topic: start the task afresh into an empty destination (a new run)`,
        { code: 'OFFSET_OUT_OF_RANGE' },
      );
    }
    const e = kafkaError(p.errorCode, `fetching ${where}`);
    if (!e.retriable) throw e;
    this.lastError = e.message;
  }

  /** After a retriable failure: reload the metadata (connections reopen on demand). */
  private async refresh(): Promise<void> {
    if (this.closed) return;
    try {
      await this.cluster.refreshMetadata([...this.offsets.keys()]);
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }
}

const EMPTY = Buffer.alloc(0);
/** read_committed: records of aborted transactions are listed so that they can be skipped. */
const READ_COMMITTED = 1;
/** Fetch v4 is the first with record batches v2, isolation levels and aborted transactions. */
const FETCH_MIN_VERSION = 4;

/** The smallest byte limit a fetch asks for (Kafka sends a partition's first batch whole anyway). */
const MIN_FETCH_BYTES = 16 * 1024;

function scaled(limit: number, expansion: number): number {
  return Math.max(MIN_FETCH_BYTES, Math.floor(limit / expansion));
}
