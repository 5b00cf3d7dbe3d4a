import type { Client } from 'pg';
import { DataError, PgferryError } from '@pgferry/core';
import { classifyPgError, quoteQualified, formatLsn, PIPELINE_SESSION_SQL } from '@pgferry/pg';
import type { TargetTable } from './pg-row-applier';
import { APPLIER_FETCH, type Applier, type ApplierTarget } from './applier';
import { ConsumerLoop } from './consumer-loop';
import { DeadLetters } from './dead-letter';
import type { PartitionData } from '@pgferry/kafka';
import { forEachRecordView, recordHeader } from '@pgferry/kafka-protocol';
import {
  RecordDecoder,
  type DecodedChange,
  STREAM_POSITION_HEADER,
  decodeTransactionRecord,
} from '@pgferry/avro';
import { readOffsets, readStreamPositions, storeOffsets } from '@pgferry/control';
import { Throttle } from './throttle';
import { PgChangeApplier } from './pg-change-applier';
import type { PerKeyApplierOptions } from './per-key-applier';

export interface TransactionalApplierOptions extends Omit<
  PerKeyApplierOptions,
  'concurrency' | 'membership'
> {
  /** The transaction metadata topic (`<prefix>.transactions`, one partition). */
  transactionsTopic: string;
  /** Records held per partition before its fetching pauses (bytes; default 8 MB). */
  maxQueuedBytes?: number;
}

/** A fetched record as the applier keeps it (key and value are views of the fetch response). */
interface Message {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
}

/** A fetched record waiting to be applied, with its stream position split out. */
interface Queued {
  offset: bigint;
  message: Message;
  /** The header pgferry.pos, whole (it is stored with the offsets). */
  pos: Buffer;
  lsn: bigint;
  seq: number;
}

/** One topic partition's fetched records, in offset order, and how far they were taken. */
interface PartitionQueue {
  topic: string;
  partition: number;
  /** Fetched records; those before `start` are taken (an index, so taking one is O(1)). */
  items: Queued[];
  start: number;
  bytes: number;
  paused: boolean;
  /** The offset the next fetched record must have (older ones were queued already). */
  fetchedNext: bigint;
  /** The offset after the last record taken off the queue (applied or skipped). */
  takenNext: bigint;
  /** The greatest stream position taken. */
  lastPos: Buffer | null;
  /** Taken records whose offset is not stored in the destination yet. */
  dirty: boolean;
}

/** One source transaction being applied: its commit LSN, the next record number, its END. */
interface OpenTransaction {
  lsn: bigint;
  id: string;
  next: number;
  endSeq: number | null;
  endPos: Buffer | null;
}

/**
 * The open destination transaction: whole source transactions, in commit order, committed
 * together (a reader sees the source as of one of its commits), with their offsets.
 */
interface Batch {
  started: number;
  changes: number;
  /** The first and the last source transaction in it (for errors). */
  firstId: string;
  lastId: string;
  /** The END position of the last source transaction in it (stored with the transaction topic's offset). */
  endPos: Buffer | null;
  /** Changes gathered per table topic, not yet applied. */
  pending: Map<string, Pending>;
  pendingChanges: number;
  pendingBytes: number;
}

/** Changes of one table in one shape, in source order, applied together. */
interface Pending {
  target: ApplierTarget;
  shape: string;
  changes: DecodedChange[];
  messages: Array<{ partition: number; message: Message }>;
  bytes: number;
}

/** Changes gathered before they are applied, inside the open destination transaction (bounded memory). */
const MAX_PENDING = 5000;
/**
 * The destination transaction commits at the first source transaction boundary after this many
 * changes or this long, or when no further transaction is fetched yet: small source transactions
 * share one commit and their tables' changes are applied in bulk.
 */
const COMMIT_CHANGES = 20_000;
const COMMIT_MS = 500;
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_QUEUED_BYTES = 8 * 1024 * 1024;

const posKey = (lsn: bigint, seq: number) => `${lsn}/${seq}`;

/** The next record of a partition not taken yet. */
const head = (q: PartitionQueue): Queued | undefined => q.items[q.start];

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
 * transaction, however large the source transaction, and a partition whose fetched records
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
  private readonly queues = new Map<string, PartitionQueue>();
  /** Queue heads by stream position ("lsn/seq"), for the record taken next. */
  private readonly heads = new Map<string, PartitionQueue>();
  private client: Client | null = null;
  private changes: PgChangeApplier | null = null;
  /** Commit LSN of the last source transaction taken whole (its records are skipped if sent again). */
  private lastApplied = 0n;
  private batch: Batch | null = null;
  private wake: (() => void) | null = null;
  /** Records arrived since the applier last looked: the next wait returns at once. */
  private signalled = false;
  private storedOffsets = new Map<string, bigint>();
  private stopping = false;
  private loop: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private readonly applied = new Map<string, bigint>();

  constructor(private readonly opts: TransactionalApplierOptions) {
    this.decoder = new RecordDecoder(opts.registry);
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
    this.throttle = new Throttle(opts.throttle ?? {});
    if (opts.onError === 'dead-letter' && !opts.deadLetterTopic)
      throw new PgferryError('onError dead-letter needs a deadLetterTopic');
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
    const stored = await readOffsets(client, this.opts.group, topics);
    const positions = await readStreamPositions(client, this.opts.group, topics);
    const txPos = positions.get(`${txTopic}:0`);
    if (!txPos) {
      const perKey = [...positions.keys()].filter((k) => !k.startsWith(`${txTopic}:`));
      if (perKey.length)
        throw new PgferryError(
          `consumer group ${this.opts.group} already applied changes with options.consistency per-key (${perKey[0]} has a stream position but ${txTopic} none): consistency cannot switch to transactional mid-stream; set options.consistency back to per-key, or start the task again from the full load (release, drop the destination tables, migrate)`,
        );
    } else this.lastApplied = txPos.readBigUInt64BE(0);
    for (const [k, offset] of stored) {
      if (this.byTopic.has(k.slice(0, k.lastIndexOf(':')))) this.applied.set(k, offset);
    }
    this.storedOffsets = stored;
    if (this.opts.onError === 'dead-letter') {
      this.deadLetters = new DeadLetters(this.opts.kafka, this.opts.deadLetterTopic!);
      await this.deadLetters.connect();
    }
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
        offsets: async () => this.storedOffsets,
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
    this.signal();
  }

  private queue(topic: string, partition: number): PartitionQueue {
    const k = `${topic}:${partition}`;
    let q = this.queues.get(k);
    if (!q) {
      const from = this.storedOffsets.get(k) ?? 0n;
      q = {
        topic,
        partition,
        items: [],
        start: 0,
        bytes: 0,
        paused: false,
        fetchedNext: from,
        takenNext: from,
        lastPos: null,
        dirty: false,
      };
      this.queues.set(k, q);
    }
    return q;
  }

  /** Queues a round's records of one partition (a failure stops the applier). */
  private enqueueData(data: PartitionData): void {
    if (this.failure) return;
    const where = `Kafka topic ${data.topic} partition ${data.partition}`;
    const records: Array<{ message: Message; header: Buffer | null }> = [];
    try {
      for (const b of data.batches)
        forEachRecordView(b, data.from, where, (r) =>
          records.push({
            message: {
              offset: BigInt(r.offset),
              key: r.keyStart < 0 ? null : r.buf.subarray(r.keyStart, r.keyEnd),
              value: r.valueStart < 0 ? null : r.buf.subarray(r.valueStart, r.valueEnd),
            },
            header: recordHeader(r, STREAM_POSITION_HEADER),
          }),
        );
      this.enqueue(data.topic, data.partition, records);
    } catch (err) {
      this.fail(err);
      return;
    }
    const q = this.queue(data.topic, data.partition);
    if (!q.paused && q.bytes > (this.opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES)) {
      q.paused = true;
      this.consumer!.pause(q.topic, q.partition);
    }
  }

  /** Queues fetched records past what was queued or applied before; a record lost in between is an error. */
  private enqueue(
    topic: string,
    partition: number,
    records: Array<{ message: Message; header: Buffer | null }>,
  ): void {
    const q = this.queue(topic, partition);
    const wasEmpty = !head(q);
    for (const { message: m, header } of records) {
      const offset = m.offset;
      if (offset < q.fetchedNext) continue;
      if (offset > q.fetchedNext)
        throw new DataError(
          `${topic}/${partition}: the next record to apply is at offset ${q.fetchedNext} but Kafka returned ${offset}; records in between were deleted (retention) before they were applied: start the task again from the full load`,
        );
      if (!header || header.length !== 12)
        throw new DataError(
          `${topic}/${partition}@${offset} has no ${STREAM_POSITION_HEADER} header: options.consistency transactional applies only records written by pgferry's stream capture`,
        );
      q.items.push({
        offset,
        message: m,
        pos: header,
        lsn: header.readBigUInt64BE(0),
        seq: header.readUInt32BE(8),
      });
      q.bytes += (m.value?.length ?? 0) + (m.key?.length ?? 0);
      q.fetchedNext = offset + 1n;
    }
    const first = head(q);
    if (wasEmpty && first) this.heads.set(posKey(first.lsn, first.seq), q);
    this.signal();
  }

  /** Takes the head record off `q` (applied or skipped); its offset is stored with the next commit. */
  private take(q: PartitionQueue): Queued {
    const item = q.items[q.start++];
    if (q.start === q.items.length) {
      q.items = [];
      q.start = 0;
    } else if (q.start >= 4096 && q.start * 2 >= q.items.length) {
      q.items = q.items.slice(q.start);
      q.start = 0;
    }
    const k = posKey(item.lsn, item.seq);
    if (this.heads.get(k) === q) this.heads.delete(k);
    q.bytes -= (item.message.value?.length ?? 0) + (item.message.key?.length ?? 0);
    q.takenNext = item.offset + 1n;
    if (!q.lastPos || Buffer.compare(item.pos, q.lastPos) > 0) q.lastPos = item.pos;
    q.dirty = true;
    const next = head(q);
    if (next) this.heads.set(posKey(next.lsn, next.seq), q);
    if (q.paused && q.bytes < (this.opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES) / 2) {
      q.paused = false;
      this.consumer!.resume(q.topic, q.partition);
    }
    return item;
  }

  private signal(): void {
    this.signalled = true;
    this.wake?.();
  }

  /** Resolves when records arrived since the last wait, the applier stops or fails, or after a second. */
  private waitForRecords(): Promise<void> {
    if (this.signalled) {
      this.signalled = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.wake?.(), 1000);
      this.wake = () => {
        this.wake = null;
        this.signalled = false;
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private get running(): boolean {
    return !this.stopping && !this.failure;
  }

  private txQueue(): PartitionQueue {
    return this.queue(this.opts.transactionsTopic, 0);
  }

  private async run(): Promise<void> {
    try {
      while (this.running) {
        const begin = await this.nextBegin();
        if (!begin) break;
        if (!this.batch) {
          await this.client!.query('BEGIN');
          this.batch = {
            started: Date.now(),
            changes: 0,
            endPos: null,
            firstId: begin.id,
            lastId: begin.id,
            pending: new Map(),
            pendingChanges: 0,
            pendingBytes: 0,
          };
        }
        await this.applyTransaction(begin, this.batch);
        const b = this.batch;
        if (b.changes >= COMMIT_CHANGES || Date.now() - b.started >= COMMIT_MS || !head(this.txQueue()))
          await this.commitBatch();
      }
    } finally {
      if (this.batch) {
        this.batch = null;
        await this.client!.query('ROLLBACK').catch(() => undefined);
        this.changes!.forgetStages();
      }
    }
  }

  /** Applies what is gathered, stores the offsets of everything taken, and commits. */
  private async commitBatch(): Promise<void> {
    const batch = this.batch!;
    await this.flushAll(batch);
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
        if (first.lsn <= this.lastApplied || (open && first.lsn === open.lsn && first.seq < open.next)) {
          this.take(q);
          continue;
        }
        if (open && first.lsn < open.lsn)
          throw new DataError(
            `${q.topic}/${q.partition}@${first.offset} belongs to the source transaction committed at ${formatLsn(first.lsn)}, which has no BEGIN in ${this.opts.transactionsTopic}; the topics were written by something else than this task's capture`,
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
        await this.waitForRecords();
        continue;
      }
      if (first.lsn <= this.lastApplied) {
        this.take(tx);
        continue;
      }
      const record = decodeTransactionRecord(first.message.value!);
      if (record.status !== 'BEGIN')
        throw new DataError(
          `${tx.topic}/0@${first.offset}: END of transaction ${record.id} without its BEGIN; the transaction topic was written by something else than this task's capture`,
        );
      this.take(tx);
      return { lsn: first.lsn, id: record.id, next: first.seq + 1, endSeq: null, endPos: null };
    }
    return null;
  }

  /** Stores the offsets of skipped records when no transaction is open (so lag and barriers see them). */
  private async storeSkipped(): Promise<void> {
    if (![...this.queues.values()].some((q) => q.dirty)) return;
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
    const marks = [...this.queues.values()]
      .filter((q) => q.dirty)
      .map((q) => ({
        topic: q.topic,
        partition: q.partition,
        nextOffset: q.takenNext,
        streamPos: q.topic === this.opts.transactionsTopic ? (streamPosOfTx ?? null) : q.lastPos,
      }));
    await storeOffsets(this.client!, this.opts.group, marks);
  }

  /** After a commit: offsets are the destination's now. */
  private async committed(): Promise<void> {
    for (const q of this.queues.values()) {
      if (!q.dirty) continue;
      q.dirty = false;
      if (this.byTopic.has(q.topic)) this.applied.set(`${q.topic}:${q.partition}`, q.takenNext);
    }
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
      let q = this.heads.get(posKey(tx.lsn, tx.next));
      if (!q) {
        // A record sent twice may hide the next one: skip those, then look again.
        this.skipApplied(tx);
        q = this.heads.get(posKey(tx.lsn, tx.next));
      }
      if (!q) {
        // The next record is not fetched yet: apply what is gathered while waiting.
        await this.flushAll(batch);
        await this.waitForRecords();
        continue;
      }
      const item = this.take(q);
      tx.next++;
      if (!item.message.value) continue; // a tombstone: only its offset moves
      const target = this.byTopic.get(q.topic)!;
      const change = await this.decoder.decode(item.message.value);
      let pending = batch.pending.get(q.topic);
      const shape: string =
        change.after || change.before ? change.columns.join('\u0000') : (pending?.shape ?? '');
      if (pending && pending.shape !== shape && pending.changes.length) {
        // The table's columns changed (a schema change on the source): apply the older shape first.
        await this.flush(pending, batch);
        batch.pendingChanges -= pending.changes.length;
        batch.pendingBytes -= pending.bytes;
        pending = undefined;
      }
      if (!pending) {
        pending = { target, shape, changes: [], messages: [], bytes: 0 };
        batch.pending.set(q.topic, pending);
      }
      pending.changes.push(change);
      pending.messages.push({ partition: q.partition, message: item.message });
      pending.bytes += item.message.value.length;
      batch.changes++;
      batch.pendingChanges++;
      batch.pendingBytes += item.message.value.length;
      if (batch.pendingChanges >= MAX_PENDING || batch.pendingBytes >= MAX_PENDING_BYTES)
        await this.flushAll(batch);
    }
    if (!this.running) throw this.failure ?? new PgferryError('stopped');
    batch.endPos = tx.endPos;
    this.lastApplied = tx.lsn;
  }

  /** Applies every table's gathered changes inside the open destination transaction. */
  private async flushAll(batch: Batch): Promise<void> {
    for (const pending of batch.pending.values())
      if (pending.changes.length) await this.flush(pending, batch);
    batch.pending.clear();
    batch.pendingChanges = 0;
    batch.pendingBytes = 0;
  }

  /** Takes the transaction topic's records up to the open transaction's END. */
  private findEnd(tx: OpenTransaction): void {
    if (tx.endSeq !== null) return;
    const q = this.txQueue();
    for (;;) {
      const first = head(q);
      if (!first) return;
      if (first.lsn <= this.lastApplied) {
        this.take(q);
        continue;
      }
      const record = decodeTransactionRecord(first.message.value!);
      if (first.lsn !== tx.lsn)
        throw new DataError(
          `${q.topic}/0@${first.offset}: ${record.status} of transaction ${record.id} before the END of ${tx.id}; the transaction topic was written by something else than this task's capture`,
        );
      this.take(q);
      // A BEGIN here is the same transaction sent again after a capture restart.
      if (record.status === 'END') {
        tx.endSeq = first.seq;
        tx.endPos = first.pos;
        return;
      }
    }
  }

  /** Applies a run of one table's changes inside the open destination transaction. */
  private async flush(run: Pending, batch: Batch): Promise<void> {
    const { target } = run;
    const columns = run.changes.find((c) => c.after ?? c.before)?.columns ?? [];
    const t: TargetTable = { schema: target.schema, table: target.table, columns, key: target.key };
    await this.throttle.take(run.changes.length, run.bytes);
    const client = this.client!;
    const changes = this.changes!;
    if (this.opts.onError !== 'dead-letter') {
      const counts = await changes.applyInTransaction(t, run.changes, this.opts.group).catch((err) => {
        throw describeFailure(err, batch);
      });
      this.opts.onApplied?.(target, counts);
      return;
    }
    await client.query('SAVEPOINT pgferry_run');
    try {
      const counts = await changes.applyInTransaction(t, run.changes, this.opts.group);
      await client.query('RELEASE SAVEPOINT pgferry_run');
      this.opts.onApplied?.(target, counts);
      return;
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      await client.query('ROLLBACK TO SAVEPOINT pgferry_run');
      changes.forgetStages(true);
    }
    // Find the poison changes: one at a time, each in its own savepoint.
    for (let i = 0; i < run.changes.length; i++) {
      const one = run.changes[i];
      const oneTable = { ...t, columns: one.after || one.before ? one.columns : t.columns };
      await client.query('SAVEPOINT pgferry_one');
      try {
        const counts = await changes.applyInTransaction(oneTable, [one], this.opts.group);
        await client.query('RELEASE SAVEPOINT pgferry_one');
        this.opts.onApplied?.(target, counts);
      } catch (err) {
        if (!(err instanceof DataError)) throw err;
        await client.query('ROLLBACK TO SAVEPOINT pgferry_one');
        changes.forgetStages(true);
        const { partition, message } = run.messages[i];
        await this.deadLetters!.park(message, err.message, {
          topic: target.topic,
          partition,
          table: quoteQualified(target.schema, target.table),
        });
        this.opts.onDeadLetter?.(target, message.offset.toString(), err.message);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.signal();
    await this.loop;
    await this.consumer?.stop();
    await this.deadLetters?.close();
    await this.client?.end().catch(() => undefined);
  }
}

/** A change that cannot be applied stops the applier, naming the source transactions it held back. */
function describeFailure(err: unknown, batch: Batch): Error {
  if (!(err instanceof DataError)) return err instanceof Error ? err : new PgferryError(String(err));
  const which =
    batch.firstId === batch.lastId
      ? `source transaction ${batch.lastId}`
      : `source transactions ${batch.firstId} to ${batch.lastId}, committed together,`;
  return new DataError(`${err.message} (nothing of ${which} is on the destination)`, { cause: err });
}
