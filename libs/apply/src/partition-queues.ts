import { DataError } from '@pgferry/core';
import { STREAM_POSITION_HEADER } from '@pgferry/avro';
import type { OffsetUpdate } from '@pgferry/control';
import type { PartitionData } from '@pgferry/kafka';
import { forEachRecordView, type RecordView } from '@pgferry/kafka-protocol';
import { positionHeader } from './undecodable-records';

/** A fetched record as the applier keeps it (key and value are views of the fetch response). */
export interface Message {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
}

/** A fetched record waiting to be applied, with its stream position split out. */
export interface Queued {
  offset: bigint;
  message: Message;
  /** The header pgferry.pos, whole (it is stored with the offsets). */
  pos: Buffer;
  lsn: bigint;
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
  fetchedNext: bigint;
  /** The offset after the last record taken off the queue (applied or skipped). */
  takenNext: bigint;
  /** The greatest stream position taken. */
  lastPos: Buffer | null;
  /** Taken records whose offset is not stored in the destination yet. */
  dirty: boolean;
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

const posKey = (lsn: bigint, seq: number) => `${lsn}/${seq}`;

/** The next record of a partition not taken yet. */
export const head = (q: PartitionQueue): Queued | undefined => q.items[q.start];

/**
 * The transactional applier's fetched records: one queue per topic partition, in offset order,
 * every record with its stream position (header pgferry.pos), and the queue heads indexed by
 * position, so the record a source transaction needs next is found in O(1) whatever partition
 * it is in. A partition holding more than `maxQueuedBytes` is paused until it is taken below
 * half. `waitForRecords` resolves once records arrived (or `signal` was called) since the last
 * wait.
 */
export class PartitionQueues {
  private readonly queues = new Map<string, PartitionQueue>();
  /** Queue heads by stream position ("lsn/seq"), for the record taken next. */
  private readonly heads = new Map<string, PartitionQueue>();
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
      const from = this.opts.startOffset(k);
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

  /** The queue whose head is the record at stream position (lsn, seq), if fetched. */
  headAt(lsn: bigint, seq: number): PartitionQueue | undefined {
    return this.heads.get(posKey(lsn, seq));
  }

  /**
   * Queues a round's records of one partition and signals; throws (queuing nothing) on a record
   * without a stream position or one lost between rounds. Pauses the partition when it is full.
   */
  add(data: PartitionData): void {
    const where = `Kafka topic ${data.topic} partition ${data.partition}`;
    const records: Array<{ message: Message; header: Buffer | null }> = [];
    // Records are kept in a copy of their batch, not as views of the fetch response: a record
    // waiting in one partition would hold the whole response (every partition's records) in
    // memory, and a slow partition would hold many.
    const check = this.opts.checkBatch;
    for (const fetched of data.batches) {
      const bytes = Buffer.from(fetched.buf.subarray(fetched.start, fetched.end));
      const b = { ...fetched, buf: bytes, start: 0, end: bytes.length };
      let checked = !check;
      forEachRecordView(b, data.from, where, (r) => {
        if (!checked) check!(r, where);
        checked = true;
        records.push({
          message: {
            offset: BigInt(r.offset),
            key: r.keyStart < 0 ? null : r.buf.subarray(r.keyStart, r.keyEnd),
            value: r.valueStart < 0 ? null : r.buf.subarray(r.valueStart, r.valueEnd),
          },
          header: positionHeader(r, where),
        });
      });
    }
    this.enqueue(data.topic, data.partition, records);
    const q = this.queue(data.topic, data.partition);
    if (!q.paused && q.bytes > this.opts.maxQueuedBytes) {
      q.paused = true;
      this.opts.pause(q.topic, q.partition);
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
  take(q: PartitionQueue): Queued {
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
    if (q.paused && q.bytes < this.opts.maxQueuedBytes / 2) {
      q.paused = false;
      this.opts.resume(q.topic, q.partition);
    }
    return item;
  }

  /** Records were taken (applied or skipped) since their offsets were last stored. */
  get taken(): boolean {
    return [...this.queues.values()].some((q) => q.dirty);
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
        nextOffset: q.takenNext,
        streamPos: q.topic === txTopic ? txPos : q.lastPos,
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
