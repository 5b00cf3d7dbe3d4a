import type { Client } from 'pg';
import { TransientError } from '@pgferry/core';
import { PIPELINE_SESSION_SQL } from '@pgferry/pg';
import { PgRowApplier, type DeferredKeys, type TargetTable } from './pg-row-applier';
import type { RegistryClient } from '@pgferry/avro';
import { readOffsets } from '@pgferry/control';
import { forEachRecordView } from '@pgferry/kafka-protocol';
import { LanePool } from './lane-pool';
import type { PartitionData, TopicPartition } from '@pgferry/kafka';
import { APPLIER_FETCH, FailureLatch, type Applier, type ApplierKafka, type ApplierTarget } from './applier';
import { ConsumerLoop } from './consumer-loop';
import { RunRecords } from './run-records';
import { SnapshotCopyDecoder, type SnapshotWork } from './snapshot-copy-decoder';
import { TransformedSnapshotWriter } from './transform-snapshot';

/**
 * The snapshot applier's own Fetch requests count records decompressed (see UNSEEN_EXPANSION):
 * up to 12 MB per partition and 48 MB per round; with lz4 a round is about a fifth of that on
 * the wire. On the bench the applier peaked at 268-275 MB with these (259-269 MB with 4 MB and
 * 16 MB before compression), and runs took 20.8-24.9 s against 24.4-26.6 s with 4 MB and 16 MB
 * of records: fewer, larger transactions.
 */
const SNAPSHOT_FETCH_RECORDS = {
  maxBytesPerPartition: 12 * 1024 * 1024,
  maxBytes: 48 * 1024 * 1024,
} as const;

/**
 * The expansion (decompressed bytes per fetched byte) assumed for a partition before its first
 * round: lz4 shrinks the snapshot's records about 5 times, and a column of repeated values far
 * more, so a first round is small; later rounds use the partition's last measured expansion, so
 * that a round's records stay near SNAPSHOT_FETCH_RECORDS once decompressed.
 */
const UNSEEN_EXPANSION = 16;

/**
 * Batches a snapshot applier applies at once, each on its own destination connection: one batch
 * is decoded in Node while the other is copied by its destination backend, so the applier and
 * the destination each keep a core busy. More lanes hold more decoded batches in memory without
 * more overlap; on the 2-core bench machine (`npm run bench -- full`, shared by both clusters,
 * capture, broker and applier) 3 lanes measured no better than 2, within the bench's noise.
 */
export const SNAPSHOT_APPLIER_LANES = 2;

/** Advisory lock class of the exclusive snapshot applier (its object is hashtext(group)). */
const EXCLUSIVE_LOCK_CLASS = 0x70676672;

export interface ApplierOptions extends ApplierKafka {
  registry: RegistryClient;
  /**
   * A destination connection for this applier alone (it holds transactions open, and the
   * advisory lock that keeps a second snapshot applier of the group out); the first lane. The
   * applier does not end it.
   */
  destination: Client;
  /**
   * Opens further destination connections for the other lanes (the applier ends them on stop).
   * Without it the applier has one lane, `destination`.
   */
  connect?: () => Promise<Client>;
  /** Partitions applied at the same time, each in its own transaction (default SNAPSHOT_APPLIER_LANES when `connect` is given). */
  concurrency?: number;
  targets: ApplierTarget[];
  /** Tables loaded before their key exists (prepareKeyConstraints); see PgRowApplier. */
  deferredKeys?: DeferredKeys;
  onApplied?: (target: ApplierTarget, rows: number) => void;
  /**
   * Where applying ends, per "topic:partition" (exclusive; see ConsumerLoopOptions.until): replay
   * applies a partition's snapshot records up to its first change.
   */
  until?: ReadonlyMap<string, bigint>;
}

interface Lane {
  client: Client;
  rows: PgRowApplier;
}

/**
 * Applies the table topics' snapshot rows, each fetched batch of a partition in one destination
 * transaction together with its offset (pgferry.offsets). On start (and after every rebalance)
 * it skips what the destination already holds: records below the stored offset are never
 * applied twice, whatever offset Kafka hands out. Up to `concurrency` batches are applied at
 * once, each on its own connection (a lane); one partition's batches never overlap and commit
 * in order, so its stored offset only moves forward and a crash loses nothing. Memory holds at
 * most two fetch responses plus one decoded batch per lane; with its own Fetch requests, a
 * compressed partition is fetched in fewer bytes by its last measured expansion, so that a round
 * stays near SNAPSHOT_FETCH_RECORDS once decompressed.
 * It is the only reader of the group's partitions (the supervised full-data phase runs one
 * applier process; a session advisory lock on the destination refuses a second one), and
 * fetches every partition of its topics through the consumer loop (exclusive membership).
 */
export class SnapshotApplier implements Applier {
  private consumer: ConsumerLoop | null = null;
  private applied = new Map<string, bigint>();
  private readonly latch = new FailureLatch();
  private readonly copy: SnapshotCopyDecoder;
  private readonly transformed: TransformedSnapshotWriter;
  private readonly byTopic: Map<string, ApplierTarget>;
  private readonly concurrency: number;
  private readonly lanes: Lane[] = [];
  private readonly pool = new LanePool<Lane>();
  /** The last batch started per "topic:partition": the next one waits for it. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Record bytes per fetched byte of each "topic:partition"'s last round (compression). */
  private readonly expansion = new Map<string, number>();
  private run: RunRecords | null = null;

  constructor(private readonly opts: ApplierOptions) {
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
    this.copy = new SnapshotCopyDecoder(opts.registry, this.byTopic);
    this.transformed = new TransformedSnapshotWriter(opts.registry, this.copy);
    this.concurrency = opts.connect ? Math.max(1, opts.concurrency ?? SNAPSHOT_APPLIER_LANES) : 1;
  }

  get error(): Error | null {
    return this.latch.error ?? this.consumer?.error ?? null;
  }

  /** Next offsets the destination holds, per "topic:partition". */
  get positions(): ReadonlyMap<string, bigint> {
    return this.applied;
  }

  async start(): Promise<void> {
    for (let i = 0; i < this.concurrency; i++) {
      const client = i === 0 ? this.opts.destination : await this.opts.connect!();
      const lane = { client, rows: new PgRowApplier(client, this.opts.deferredKeys) };
      this.lanes.push(lane);
      await client.query(PIPELINE_SESSION_SQL);
      this.pool.add(lane);
    }
    await this.lock();
    this.run = await RunRecords.bind(this.opts.task, this.opts.kafka, this.opts.destination);
    this.consumer = new ConsumerLoop(
      {
        kafka: this.opts.kafka,
        group: this.opts.group,
        topics: [...this.byTopic.keys()],
        membership: 'exclusive',
        fetch: {
          maxWaitMs: APPLIER_FETCH.maxWaitMs,
          ...SNAPSHOT_FETCH_RECORDS,
          expansion: (topic, partition) => this.expansion.get(`${topic}:${partition}`) ?? UNSEEN_EXPANSION,
        },
        until: this.opts.until,
      },
      {
        offsets: (partitions) => this.readOffsets(partitions),
        take: (round) => this.take(round),
        drain: () => this.drain(),
      },
    );
    await this.consumer.start();
  }

  private async readOffsets(partitions: readonly TopicPartition[]): Promise<Map<string, bigint>> {
    this.applied = await readOffsets(this.opts.destination, this.opts.group, [
      ...new Set(partitions.map((p) => p.topic)),
    ]);
    this.run?.requireOffsets(partitions, this.applied);
    return this.applied;
  }

  private async lock(): Promise<void> {
    const { rows } = await this.opts.destination.query(
      'SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked',
      [EXCLUSIVE_LOCK_CLASS, this.opts.group],
    );
    if (!rows[0].locked)
      throw new TransientError(
        `another snapshot applier of consumer group ${this.opts.group} is connected to the destination (it holds advisory lock ${EXCLUSIVE_LOCK_CLASS}/hashtext(group)); stop it, or wait until its connection ends`,
      );
  }

  /** Each partition's batches on the next free lane, after that partition's previous batch. */
  private async take(round: PartitionData[]): Promise<void> {
    for (const data of round) {
      const lane = await this.pool.take();
      if (this.error) {
        this.pool.give(lane);
        return;
      }
      this.dispatch(lane, this.workOf(data));
    }
  }

  private async drain(): Promise<void> {
    await Promise.all(this.tails.values());
  }

  private workOf(data: PartitionData): SnapshotWork {
    const where = `Kafka topic ${data.topic} partition ${data.partition}`;
    const from = this.applied.get(`${data.topic}:${data.partition}`) ?? 0n;
    const offsets: number[] = [];
    const bufs: Array<Buffer | null> = [];
    const starts: number[] = [];
    const ends: number[] = [];
    const first = data.from > from ? data.from : from;
    // The expansion is measured on the batches read whole (none of their records skipped).
    let fetched = 0;
    let values = 0;
    for (const b of data.batches) {
      const whole = b.baseOffset >= first;
      if (whole) fetched += b.end - b.start;
      let checked = !this.run;
      forEachRecordView(b, first, where, (r) => {
        if (!checked) this.run!.check(r, where);
        checked = true;
        const { offset, buf, valueStart: start, valueEnd: end } = r;
        offsets.push(offset);
        bufs.push(start < 0 ? null : buf);
        starts.push(start);
        ends.push(end);
        if (whole && start >= 0) values += end - start;
      });
    }
    if (fetched > 0) this.expansion.set(`${data.topic}:${data.partition}`, Math.max(1, values / fetched));
    return {
      topic: data.topic,
      partition: data.partition,
      offsets,
      bufs,
      starts,
      ends,
      nextOffset: data.nextOffset,
    };
  }

  /** Applies `work` on `lane` after the partition's previous batch; releases the lane. */
  private dispatch(lane: Lane, work: SnapshotWork): void {
    const key = `${work.topic}:${work.partition}`;
    const prev = this.tails.get(key) ?? Promise.resolve();
    const task = prev
      .then(() => {
        if (this.error) return;
        if (work.nextOffset <= (this.applied.get(key) ?? 0n)) return;
        return this.apply(lane, work);
      })
      .catch((err) => this.latch.fail(err))
      .finally(() => this.pool.give(lane));
    this.tails.set(key, task);
  }

  /**
   * Decodes `work` to COPY and applies it with its offset in one transaction on `lane`: in COPY
   * binary when decodeBinary takes the batch (the destination parses it for much less CPU than
   * text), else in COPY text.
   */
  private async apply(lane: Lane, work: SnapshotWork): Promise<void> {
    const target = this.byTopic.get(work.topic)!;
    const mark = {
      group: this.opts.group,
      topic: work.topic,
      partition: work.partition,
      nextOffset: work.nextOffset,
    };
    if (target.transform) {
      // Through the destination's view (transform-snapshot.ts), staged in the source's shape.
      const rows = await this.transformed.apply(lane.client, target, work, mark);
      this.applied.set(`${work.topic}:${work.partition}`, work.nextOffset);
      this.opts.onApplied?.(target, rows);
      return;
    }
    let batch = await this.copy.decodeBinary(lane.client, work);
    batch ??= await this.copy.decodeText(work);
    const t: TargetTable = {
      schema: target.schema,
      table: target.table,
      columns: batch.columns ?? [],
      key: target.key,
      nameCase: target.nameCase,
    };
    try {
      await lane.rows.applyCopy(t, batch.chunks, batch.rows, mark, batch.format);
    } finally {
      batch.release?.();
    }
    this.applied.set(`${work.topic}:${work.partition}`, work.nextOffset);
    this.opts.onApplied?.(target, batch.rows);
  }

  /**
   * Stops fetching, lets the batches under way commit (or fail), and ends the connections it
   * opened (not `destination`; the advisory lock goes with its session, and is released here).
   */
  async stop(): Promise<void> {
    await this.consumer?.stop();
    await this.drain();
    await this.opts.destination
      .query('SELECT pg_advisory_unlock($1, hashtext($2))', [EXCLUSIVE_LOCK_CLASS, this.opts.group])
      .catch(() => undefined);
    await Promise.all(this.lanes.slice(1).map((l) => l.client.end().catch(() => undefined)));
  }
}
