import type { Client } from 'pg';
import { DataError, PgferryError } from '@pgferry/core';
import { classifyPgError, formatLsn, PIPELINE_SESSION_SQL } from '@pgferry/pg';
import { APPLIER_FETCH, type Applier, type ApplierTarget } from './applier';
import { ConsumerLoop } from './consumer-loop';
import { DeadLetters } from './dead-letter';
import type { PartitionData } from '@pgferry/kafka';
import { RecordDecoder } from '@pgferry/avro';
import { readOffsets, readStreamPositions, storeOffsets } from '@pgferry/control';
import { Throttle } from './throttle';
import { PgChangeApplier } from './pg-change-applier';
import type { PerKeyApplierOptions } from './per-key-applier';
import {
  compareLsn,
  head,
  lsnBytes,
  lsnOf,
  PartitionQueues,
  POSITION_BYTES,
  type PartitionQueue,
} from './partition-queues';
import { BatchApplier, openBatch, type Batch } from './transaction-batch';
import { RunRecords } from './run-records';
import { transactionRecord } from './undecodable-records';

export interface TransactionalApplierOptions extends Omit<
  PerKeyApplierOptions,
  'concurrency' | 'membership'
> {
  /** The transaction metadata topic (`<prefix>.transactions`, one partition). */
  transactionsTopic: string;
  /** Records held per partition before its fetching pauses (bytes; default 4 MB). */
  maxQueuedBytes?: number;
}

/** One source transaction being applied: its commit LSN (8 bytes, see lsnBytes), the next record number, its END. */
interface OpenTransaction {
  lsn: Buffer;
  id: string;
  next: number;
  endSeq: number | null;
  endPos: Buffer | null;
}

/**
 * The destination transaction commits at the first source transaction boundary after this many
 * changes or this long, or when no further transaction is fetched yet: small source transactions
 * share one commit and their tables' changes are applied in bulk.
 */
const COMMIT_CHANGES = 20_000;
const COMMIT_MS = 500;
const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/**
 * The applier of `options.consistency: transactional`: applies whole source transactions in
 * commit order, so a reader of the destination sees the source as of one of its commits, never
 * part of a transaction nor one without those committed before it.
 *
 * It reads the transaction topic and every table topic. The capture numbers the records of each
 * source transaction (header pgferry.pos: commit LSN, number): BEGIN in the transaction topic
 * has the first number, END the last, and the change records in the table topics every number
 * between, each once, whatever partition they went to. So after a BEGIN the applier takes the
 * next number from the heads of the partitions (within a partition the numbers grow) until the
 * END's, gathering the changes per table. Several source transactions share one destination
 * transaction (up to 20,000 changes or 500 ms, or until nothing more is fetched), committed
 * only at a source transaction boundary with the offsets of every partition it took records
 * from, so each table's changes are applied in bulk (PgChangeApplier, in source order).
 * Records sent twice by a restarted capture (same position) and transactions at or below the
 * last END applied are skipped; a restart resumes from the stored offsets.
 *
 * Memory stays bounded: changes are applied in runs of up to 5000 inside the open destination
 * transaction, however large the source transaction (the destination applies one run while the
 * next is decoded and gathered, so two at most are held), and a partition whose fetched records
 * exceed `maxQueuedBytes` stops being fetched until the applier catches up (the record it needs
 * next is always at the head of some partition, so pausing the others cannot stall it).
 *
 * Poison records with onError dead-letter: the failing run is applied again one change at a
 * time inside savepoints, and a change that cannot be applied goes to the dead-letter topic
 * before the transaction commits (after a crash right then it can be parked a second time).
 */
export class TransactionalApplier implements Applier {
  private consumer: ConsumerLoop | null = null;
  private deadLetters: DeadLetters | null = null;
  private readonly decoder: RecordDecoder;
  private readonly byTopic: Map<string, ApplierTarget>;
  private readonly throttle: Throttle;
  private readonly queues: PartitionQueues;
  private client: Client | null = null;
  private changes: PgChangeApplier | null = null;
  private batches: BatchApplier | null = null;
  /** Commit LSN (8 bytes) of the last source transaction taken whole (its records are skipped if sent again). */
  private lastApplied = lsnBytes(0n);
  private batch: Batch | null = null;
  private storedOffsets = new Map<string, bigint>();
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private readonly applied = new Map<string, bigint>();
  private runRecords: RunRecords | null = null;

  constructor(private readonly opts: TransactionalApplierOptions) {
    this.decoder = new RecordDecoder(opts.registry);
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
    this.throttle = opts.throttle instanceof Throttle ? opts.throttle : new Throttle(opts.throttle ?? {});
    if (opts.onError === 'dead-letter' && !opts.deadLetterTopic)
      throw new PgferryError('onError dead-letter needs a deadLetterTopic');
    this.queues = new PartitionQueues({
      startOffset: (k) => this.storedOffsets.get(k) ?? 0n,
      maxQueuedBytes: opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
      pause: (topic, partition) => this.consumer!.pause(topic, partition),
      resume: (topic, partition) => this.consumer!.resume(topic, partition),
      checkBatch: (r, where) => this.runRecords?.check(r, where),
    });
  }

  get error(): Error | null {
    return this.failure ?? this.consumer?.error ?? null;
  }

  /** Records parked in the dead-letter topic since start. */
  get deadLettered(): number {
    return this.deadLetters?.count ?? 0;
  }

  /** Next offsets the destination holds, per "topic:partition" of the table topics. */
  get positions(): ReadonlyMap<string, bigint> {
    return this.applied;
  }

  async start(): Promise<void> {
    const client = await this.opts.connect();
    this.client = client;
    await client.query(PIPELINE_SESSION_SQL);
    this.changes = new PgChangeApplier(client);
    const txTopic = this.opts.transactionsTopic;
    const topics = [...this.byTopic.keys(), txTopic];
    this.runRecords = await RunRecords.bind(this.opts.task, this.opts.kafka, client);
    const stored = await readOffsets(client, this.opts.group, topics);
    const positions = await readStreamPositions(client, this.opts.group, topics);
    const txPos = positions.get(`${txTopic}:0`);
    if (!txPos) {
      const perKey = [...positions.keys()].filter((k) => !k.startsWith(`${txTopic}:`));
      if (perKey.length)
        throw new PgferryError(
          `consumer group ${this.opts.group} already applied changes with options.consistency per-key (${perKey[0]} has a stream position but ${txTopic} none): consistency cannot switch to transactional mid-stream; set options.consistency back to per-key, or start the task again from the full load (release, drop the destination tables, migrate)`,
        );
    } else this.lastApplied = Buffer.from(txPos.subarray(0, 8));
    for (const [k, offset] of stored) {
      if (this.byTopic.has(k.slice(0, k.lastIndexOf(':')))) this.applied.set(k, offset);
    }
    this.storedOffsets = stored;
    if (this.opts.onError === 'dead-letter') {
      this.deadLetters = new DeadLetters(this.opts.kafka, this.opts.deadLetterTopic!);
      await this.deadLetters.connect();
    }
    this.batches = new BatchApplier(
      client,
      this.decoder,
      this.changes,
      this.throttle,
      this.deadLetters,
      this.opts,
      () => this.queues.signal(),
    );
    // Every partition of every topic is this applier's: whole transactions span them all.
    this.consumer = new ConsumerLoop(
      {
        kafka: this.opts.kafka,
        group: this.opts.group,
        topics,
        membership: 'exclusive',
        fetch: APPLIER_FETCH,
      },
      {
        offsets: async (partitions) => {
          this.runRecords?.requireOffsets(partitions, this.storedOffsets);
          return this.storedOffsets;
        },
        take: async (round) => {
          for (const data of round) this.enqueueData(data);
        },
        drain: async () => undefined,
      },
    );
    await this.consumer.start();
    this.loop = this.run().catch((err) => {
      // A lost connection is retriable (the applier is restarted); a refused change names its table.
      if (!this.stopping) this.fail(classifyPgError(err, 'applying source transactions'));
    });
  }

  private fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new PgferryError(String(err));
    this.queues.signal();
  }

  /** Queues a round's records of one partition (a failure stops the applier). */
  private enqueueData(data: PartitionData): void {
    if (this.failure) return;
    try {
      this.queues.add(data);
    } catch (err) {
      this.fail(err);
    }
  }

  private get running(): boolean {
    return !this.stopping && !this.failure;
  }

  private txQueue(): PartitionQueue {
    return this.queues.queue(this.opts.transactionsTopic, 0);
  }

  private async run(): Promise<void> {
    try {
      while (this.running) {
        const begin = await this.nextBegin();
        if (!begin) break;
        if (!this.batch) {
          await this.client!.query('BEGIN');
          this.batch = openBatch(begin.id);
        }
        await this.applyTransaction(begin, this.batch);
        const b = this.batch;
        if (b.changes >= COMMIT_CHANGES || Date.now() - b.started >= COMMIT_MS || !head(this.txQueue()))
          await this.commitBatch();
      }
    } finally {
      if (this.batch) {
        const open = this.batch;
        this.batch = null;
        // Runs still being applied first: a ROLLBACK queued before their next statement would
        // leave that statement to run outside the transaction.
        await this.batches!.settle(open).catch(() => undefined);
        await this.client!.query('ROLLBACK').catch(() => undefined);
        this.changes!.forgetStages();
      }
    }
  }

  /** Applies what is gathered, stores the offsets of everything taken, and commits. */
  private async commitBatch(): Promise<void> {
    const batch = this.batch!;
    await this.batches!.finish(batch);
    this.skipApplied(null);
    await this.storeTaken(batch.endPos);
    await this.client!.query('COMMIT');
    this.changes!.transactionCommitted();
    this.batch = null;
    await this.committed();
  }

  /**
   * Skips, in every table partition, records of transactions applied already (sent again by a
   * restarted capture); `open` also skips its own records numbered below the next one. A
   * record of a transaction between the last applied one and `open` has no BEGIN: an error.
   */
  private skipApplied(open: OpenTransaction | null): void {
    for (const q of this.queues.values()) {
      if (q.topic === this.opts.transactionsTopic) continue;
      for (;;) {
        const first = head(q);
        if (!first) break;
        const vsOpen = open ? compareLsn(first, open.lsn) : 1;
        if (compareLsn(first, this.lastApplied) <= 0 || (vsOpen === 0 && first.seq < open!.next)) {
          this.queues.take(q);
          continue;
        }
        if (vsOpen < 0)
          throw new DataError(
            `${q.topic}/${q.partition}@${first.offset} belongs to the source transaction committed at ${formatLsn(lsnOf(first))}, which has no BEGIN in ${this.opts.transactionsTopic}; the topics were written by something else than this task's capture`,
          );
        break;
      }
    }
  }

  /**
   * Waits for the next transaction's BEGIN (older ones skipped). Before waiting, the open
   * destination transaction commits, or the offsets of records skipped meanwhile are stored.
   */
  private async nextBegin(): Promise<OpenTransaction | null> {
    const tx = this.txQueue();
    while (this.running) {
      const first = head(tx);
      if (!first) {
        if (this.batch) await this.commitBatch();
        else {
          this.skipApplied(null);
          await this.storeSkipped();
        }
        await this.queues.waitForRecords();
        continue;
      }
      if (compareLsn(first, this.lastApplied) <= 0) {
        this.queues.take(tx);
        continue;
      }
      const record = transactionRecord(tx.topic, first);
      if (record.status !== 'BEGIN')
        throw new DataError(
          `${tx.topic}/0@${first.offset}: END of transaction ${record.id} without its BEGIN; the transaction topic was written by something else than this task's capture`,
        );
      this.queues.take(tx);
      const lsn = Buffer.from(first.buf.subarray(first.posAt, first.posAt + 8));
      return { lsn, id: record.id, next: first.seq + 1, endSeq: null, endPos: null };
    }
    return null;
  }

  /** Stores the offsets of skipped records when no transaction is open (so lag and barriers see them). */
  private async storeSkipped(): Promise<void> {
    if (!this.queues.taken) return;
    const client = this.client!;
    await client.query('BEGIN');
    try {
      await this.storeTaken();
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    await this.committed();
  }

  private async storeTaken(streamPosOfTx?: Buffer | null): Promise<void> {
    const marks = this.queues.takenMarks(this.opts.transactionsTopic, streamPosOfTx ?? null);
    await storeOffsets(this.client!, this.opts.group, marks);
  }

  /** After a commit: offsets are the destination's now. */
  private async committed(): Promise<void> {
    this.queues.stored((q) => {
      if (this.byTopic.has(q.topic)) this.applied.set(`${q.topic}:${q.partition}`, BigInt(q.takenNext));
    });
  }

  /**
   * Takes the records of `tx` in their order and gathers them per table into the batch (applied
   * in runs inside the open destination transaction); returns at its END, uncommitted.
   */
  private async applyTransaction(tx: OpenTransaction, batch: Batch): Promise<void> {
    batch.lastId = tx.id;
    while (this.running) {
      this.findEnd(tx);
      if (tx.endSeq !== null && tx.next >= tx.endSeq) break;
      let q = this.queues.headAt(tx.lsn, tx.next);
      if (!q) {
        // A record sent twice may hide the next one: skip those, then look again.
        this.skipApplied(tx);
        q = this.queues.headAt(tx.lsn, tx.next);
      }
      if (!q) {
        // The next record is not fetched yet: hand what is gathered to the destination while waiting.
        await this.batches!.flushAll(batch);
        await this.queues.waitForRecords();
        continue;
      }
      const item = this.queues.take(q);
      tx.next++;
      if (item.valueStart < 0) continue; // a tombstone: only its offset moves
      const taking = this.batches!.take(batch, this.byTopic.get(q.topic)!, q.partition, item);
      if (taking) await taking;
    }
    if (!this.running) throw this.failure ?? new PgferryError('stopped');
    batch.endPos = tx.endPos;
    this.lastApplied = tx.lsn;
  }

  /** Takes the transaction topic's records up to the open transaction's END. */
  private findEnd(tx: OpenTransaction): void {
    if (tx.endSeq !== null) return;
    const q = this.txQueue();
    for (;;) {
      const first = head(q);
      if (!first) return;
      if (compareLsn(first, this.lastApplied) <= 0) {
        this.queues.take(q);
        continue;
      }
      const record = transactionRecord(q.topic, first);
      if (compareLsn(first, tx.lsn) !== 0)
        throw new DataError(
          `${q.topic}/0@${first.offset}: ${record.status} of transaction ${record.id} before the END of ${tx.id}; the transaction topic was written by something else than this task's capture`,
        );
      this.queues.take(q);
      // A BEGIN here is the same transaction sent again after a capture restart.
      if (record.status === 'END') {
        tx.endSeq = first.seq;
        tx.endPos = Buffer.from(first.buf.subarray(first.posAt, first.posAt + POSITION_BYTES));
        return;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.queues.signal();
    await this.loop;
    await this.consumer?.stop();
    await this.deadLetters?.close();
    await this.client?.end().catch(() => undefined);
  }
}
