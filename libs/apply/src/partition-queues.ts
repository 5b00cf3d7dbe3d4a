import { compareBytes, DataError } from '@pgferry/core';
import { STREAM_POSITION_HEADER } from '@pgferry/avro';
import type { OffsetUpdate } from '@pgferry/control';
import type { PartitionData } from '@pgferry/kafka';
import { Compression, forEachRecordView, readBatchHeader, type RecordView } from '@pgferry/kafka-protocol';
import { positionHeaderAt } from './undecodable-records';

/** A stream position's length: commit LSN (8 bytes, big-endian) and number in the transaction (4). */
export const POSITION_BYTES = 12;
const LSN_BYTES = 8;

/**
 * A fetched record waiting to be applied. Its key, value and stream position are ranges of
 * `buf` (a copy of its batch, or the batch's decompressed records), not views: a view per field
 * and a position string per record were most of the transactional applier's garbage.
 */
export interface Queued {
  /** The record's offset (a number: exact below 2^53, as forEachRecordView reads it). */
  offset: number;
  buf: Buffer;
  /** buf[keyStart, keyEnd), keyStart -1 for no key; likewise the value (-1: a tombstone). */
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  /** The stream position (header pgferry.pos) is buf[posAt, posAt + 12): commit LSN, then seq. */
  posAt: number;
  /** The record's number in its source transaction. */
  seq: number;
}

/** One topic partition's fetched records, in offset order, and how far they were taken. */
export interface PartitionQueue {
  topic: string;
  partition: number;
  /** Fetched records; those before `start` are taken (an index, so taking one is O(1)). */
  items: Queued[];
  start: number;
  bytes: number;
  paused: boolean;
  /** The offset the next fetched record must have (older ones were queued already). */
  fetchedNext: number;
  /** The offset after the last record taken off the queue (applied or skipped). */
  takenNext: number;
  /** The greatest stream position taken: lastPosBuf[lastPosAt, lastPosAt + 12), or none. */
  lastPosBuf: Buffer | null;
  lastPosAt: number;
  /** Taken records whose offset is not stored in the destination yet. */
  dirty: boolean;
  /** The next queue whose head has the same seq as this one's (PartitionQueues' head index). */
  sameSeq: PartitionQueue | null;
}

export interface PartitionQueuesOptions {
  /** The next offset the destination holds for "topic:partition" (a queue starts there). */
  startOffset: (key: string) => bigint;
  /** Record bytes held per partition before its fetching pauses; it resumes below half. */
  maxQueuedBytes: number;
  pause: (topic: string, partition: number) => void;
  resume: (topic: string, partition: number) => void;
  /** Checks the first record read of each batch (RunRecords.check); throws to refuse the round. */
  checkBatch?: (r: RecordView, where: string) => void;
}

/** The next record of a partition not taken yet. */
export const head = (q: PartitionQueue): Queued | undefined => q.items[q.start];

/** A commit LSN as the 8 bytes stream positions hold it (for headAt and compareLsn). */
export function lsnBytes(lsn: bigint): Buffer {
  const b = Buffer.alloc(LSN_BYTES);
  b.writeBigUInt64BE(lsn);
  return b;
}

/** The commit LSN of a record's source transaction. */
export const lsnOf = (r: Queued): bigint => r.buf.readBigUInt64BE(r.posAt);

/** Compares a record's commit LSN with `lsn` (8 bytes, see lsnBytes): -1, 0 or 1, no bigint made. */
export const compareLsn = (r: Queued, lsn: Buffer): number => compareBytes(r.buf, r.posAt, lsn, 0, LSN_BYTES);

const recordBytes = (r: Queued) =>
  Math.max(r.valueEnd - r.valueStart, 0) + Math.max(r.keyEnd - r.keyStart, 0);

/**
 * The transactional applier's fetched records: one queue per topic partition, in offset order,
 * every record with its stream position (header pgferry.pos), and the queue heads indexed by
 * their number in the transaction (queues whose heads share a number are chained and told apart
 * by commit LSN), so the record a source transaction needs next is found in O(1) whatever
 * partition it is in. A partition holding more than `maxQueuedBytes` is paused until it is
 * taken below half. `waitForRecords` resolves once records arrived (or `signal` was called)
 * since the last wait.
 */
export class PartitionQueues {
  private readonly queues = new Map<string, PartitionQueue>();
  /** Queue heads by seq, each the first of a chain through PartitionQueue.sameSeq. */
  private readonly heads = new Map<number, PartitionQueue>();
  private wake: (() => void) | null = null;
  /** Records arrived since the applier last looked: the next wait returns at once. */
  private signalled = false;

  constructor(private readonly opts: PartitionQueuesOptions) {}

  values(): IterableIterator<PartitionQueue> {
    return this.queues.values();
  }

  queue(topic: string, partition: number): PartitionQueue {
    const k = `${topic}:${partition}`;
    let q = this.queues.get(k);
    if (!q) {
      const from = Number(this.opts.startOffset(k));
      q = {
        topic,
        partition,
        items: [],
        start: 0,
        bytes: 0,
        paused: false,
        fetchedNext: from,
        takenNext: from,
        lastPosBuf: null,
        lastPosAt: 0,
        dirty: false,
        sameSeq: null,
      };
      this.queues.set(k, q);
    }
    return q;
  }

  /** The queue whose head is the record at stream position (lsn, seq), if fetched; lsn as lsnBytes gives it. */
  headAt(lsn: Buffer, seq: number): PartitionQueue | undefined {
    for (let q: PartitionQueue | null = this.heads.get(seq) ?? null; q; q = q.sameSeq)
      if (compareLsn(q.items[q.start], lsn) === 0) return q;
    return undefined;
  }

  /**
   * Queues a round's records of one partition and signals; throws (queuing nothing) on a record
   * without a stream position or one lost between rounds. Pauses the partition when it is full.
   */
  add(data: PartitionData): void {
    const { topic, partition } = data;
    const where = `Kafka topic ${topic} partition ${partition}`;
    const q = this.queue(topic, partition);
    const wasEmpty = !head(q);
    const was = { length: q.items.length, bytes: q.bytes, fetchedNext: q.fetchedNext };
    const check = this.opts.checkBatch;
    try {
      for (const fetched of data.batches) {
        // An uncompressed batch is copied, its records kept as ranges of the copy: a record
        // waiting in one partition must not hold the whole fetch response (every partition's
        // records) in memory. A compressed batch's records are read from its decompressed copy.
        const compressed = readBatchHeader(fetched.buf, fetched.start).compression !== Compression.none;
        const buf = compressed ? fetched.buf : Buffer.from(fetched.buf.subarray(fetched.start, fetched.end));
        const b = compressed ? fetched : { ...fetched, buf, start: 0, end: buf.length };
        let checked = !check;
        forEachRecordView(b, data.from, where, (r) => {
          if (!checked) check!(r, where);
          checked = true;
          this.push(q, r, where);
        });
      }
    } catch (err) {
      q.items.length = was.length;
      q.bytes = was.bytes;
      q.fetchedNext = was.fetchedNext;
      throw err;
    }
    if (wasEmpty) this.index(q);
    this.signal();
    if (!q.paused && q.bytes > this.opts.maxQueuedBytes) {
      q.paused = true;
      this.opts.pause(q.topic, q.partition);
    }
  }

  /** Queues one fetched record past what was queued or applied before; a record lost in between is an error. */
  private push(q: PartitionQueue, r: RecordView, where: string): void {
    const offset = r.offset;
    if (offset < q.fetchedNext) return;
    const label = `${q.topic}/${q.partition}`;
    if (offset > q.fetchedNext)
      throw new DataError(
        `${label}: the next record to apply is at offset ${q.fetchedNext} but Kafka returned ${offset}; records in between were deleted (retention) before they were applied: start the task again from the full load`,
      );
    const posAt = positionHeaderAt(r, where, POSITION_BYTES);
    if (posAt < 0)
      throw new DataError(
        `${label}@${offset} has no ${STREAM_POSITION_HEADER} header: options.consistency transactional applies only records written by pgferry's stream capture`,
      );
    const item: Queued = {
      offset,
      buf: r.buf,
      keyStart: r.keyStart,
      keyEnd: r.keyEnd,
      valueStart: r.valueStart,
      valueEnd: r.valueEnd,
      posAt,
      seq: r.buf.readUInt32BE(posAt + LSN_BYTES),
    };
    q.items.push(item);
    q.bytes += recordBytes(item);
    q.fetchedNext = offset + 1;
  }

  /** Puts q's head in the head index. */
  private index(q: PartitionQueue): void {
    const first = head(q);
    if (!first) return;
    q.sameSeq = this.heads.get(first.seq) ?? null;
    this.heads.set(first.seq, q);
  }

  /** Takes q's head (of number `seq`) out of the head index. */
  private unindex(q: PartitionQueue, seq: number): void {
    let prev: PartitionQueue | null = null;
    for (let at = this.heads.get(seq); at; prev = at, at = at.sameSeq ?? undefined) {
      if (at !== q) continue;
      if (prev) prev.sameSeq = q.sameSeq;
      else if (q.sameSeq) this.heads.set(seq, q.sameSeq);
      else this.heads.delete(seq);
      break;
    }
    q.sameSeq = null;
  }

  /** Takes the head record off `q` (applied or skipped); its offset is stored with the next commit. */
  take(q: PartitionQueue): Queued {
    const item = q.items[q.start++];
    this.unindex(q, item.seq);
    if (q.start === q.items.length) {
      q.items = [];
      q.start = 0;
    } else if (q.start >= 4096 && q.start * 2 >= q.items.length) {
      q.items = q.items.slice(q.start);
      q.start = 0;
    }
    q.bytes -= recordBytes(item);
    q.takenNext = item.offset + 1;
    if (!q.lastPosBuf || compareBytes(item.buf, item.posAt, q.lastPosBuf, q.lastPosAt, POSITION_BYTES) > 0) {
      q.lastPosBuf = item.buf;
      q.lastPosAt = item.posAt;
    }
    q.dirty = true;
    this.index(q);
    if (q.paused && q.bytes < this.opts.maxQueuedBytes / 2) {
      q.paused = false;
      this.opts.resume(q.topic, q.partition);
    }
    return item;
  }

  /** Records were taken (applied or skipped) since their offsets were last stored. */
  get taken(): boolean {
    for (const q of this.queues.values()) if (q.dirty) return true;
    return false;
  }

  /**
   * What to store for the records taken since the last store: each partition's next offset and
   * greatest stream position; the transaction topic `txTopic` carries `txPos` instead (the END
   * position of the last source transaction committed with them).
   */
  takenMarks(txTopic: string, txPos: Buffer | null): OffsetUpdate[] {
    return [...this.queues.values()]
      .filter((q) => q.dirty)
      .map((q) => ({
        topic: q.topic,
        partition: q.partition,
        nextOffset: BigInt(q.takenNext),
        streamPos:
          q.topic === txTopic
            ? txPos
            : q.lastPosBuf && Buffer.from(q.lastPosBuf.subarray(q.lastPosAt, q.lastPosAt + POSITION_BYTES)),
      }));
  }

  /** The transaction that stored takenMarks committed: calls `each` for every partition in them. */
  stored(each: (q: PartitionQueue) => void): void {
    for (const q of this.queues.values()) {
      if (!q.dirty) continue;
      q.dirty = false;
      each(q);
    }
  }

  /** Ends the current wait (records arrived, or the applier stops or fails). */
  signal(): void {
    this.signalled = true;
    this.wake?.();
  }

  /** Resolves when records arrived since the last wait, `signal` was called, or after a second. */
  waitForRecords(): Promise<void> {
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
}
