import { lz4FrameCompress } from '@pgferry/core';
import { AvroSlab } from '@pgferry/avro';
import type { SlabPool } from '@pgferry/core';
import { keyPartition } from './kafka-partitioner';
import * as protocol from '@pgferry/kafka-protocol';
import { encodeHeaders, type BatchProducer, type RecordHeader } from '@pgferry/kafka-protocol';

// Bound once: TypeScript's CommonJS output reads another package's export through a getter on
// its index, a lookup per use that V8 does not inline; this path writes every record's varints.
const { BATCH_HEADER_BYTES, Compression, sealBatch, varintBytes, writeBatchHeader, writeVarint } = protocol;

/** The varints written before their value is known get this many bytes; others are moved. */
const RESERVED = 2;

/**
 * One record batch of one partition whose records are written in their final form as they are
 * encoded (see PartitionedBatches): records in slab.buf[BATCH_HEADER_BYTES, slab.pos), the header
 * written when the batch is sent.
 */
export class FramedBatch {
  readonly slab: AvroSlab;
  count = 0;
  /** The records as one LZ4 frame, once `compress` made it. */
  private frame: Buffer | null = null;

  constructor(
    readonly partition: number,
    initialBytes: number,
    pool: SlabPool | null = null,
  ) {
    this.slab = new AvroSlab(initialBytes, pool, true);
    this.slab.pos = BATCH_HEADER_BYTES;
  }

  /** The whole batch's size, header included, as encoded (uncompressed). */
  get bytes(): number {
    return this.slab.pos;
  }

  /** The size of the batch on the wire: compressed once `compress` ran. */
  get wireBytes(): number {
    return this.frame ? BATCH_HEADER_BYTES + this.frame.length : this.slab.pos;
  }

  /**
   * Sends the records LZ4-compressed (Kafka's compression.type lz4) from now on. Once, and
   * deterministic, so a retried batch is the batch Kafka may already hold.
   */
  compress(): void {
    this.frame ??= lz4FrameCompress(this.slab.buf, BATCH_HEADER_BYTES, this.slab.pos);
  }

  /**
   * The whole batch, its header written with these producer fields and timestamp: a view of
   * the slab itself (header in place before the records, nothing copied), or, after `compress`,
   * a buffer of the header and the LZ4 frame. Call once per batch and send the same bytes on
   * every retry.
   */
  encode(producer: BatchProducer, timestampMs: number): Buffer {
    const ts = BigInt(timestampMs);
    if (this.frame) {
      const header = Buffer.allocUnsafe(BATCH_HEADER_BYTES + this.frame.length);
      writeBatchHeader(header, 0, {
        bytes: header.length,
        count: this.count,
        producer,
        firstTimestamp: ts,
        codec: Compression.lz4,
      });
      this.frame.copy(header, BATCH_HEADER_BYTES);
      sealBatch(header, 0, header.length);
      return header;
    }
    const buf = this.slab.buf;
    writeBatchHeader(buf, 0, { bytes: this.slab.pos, count: this.count, producer, firstTimestamp: ts });
    sealBatch(buf, 0, this.slab.pos);
    return buf.subarray(0, this.slab.pos);
  }
}

/**
 * Records written straight into the record batches of their partitions, in Kafka's record format
 * (length, attributes, timestamp delta 0, offset delta, key, value, the same headers for every
 * record or none), so that sending
 * them copies each batch once, whole, instead of each record's key and value from where they were
 * encoded. The partition is the one keyPartition gives the key (round robin for a null key), as
 * KafkaPublisher chooses it. A partition's batch that grows past `maxBatchBytes` is closed and
 * the partition goes on in a new one (a record alone may be larger: Kafka then names it).
 *
 * Use: `begin` with the key, write the value into the returned slab, `end`; `batches()` at the
 * end. Keys and values must not be written between `end` and the next `begin`.
 */
export class PartitionedBatches {
  private readonly current: Array<FramedBatch | undefined>;
  private readonly closed: FramedBatch[] = [];
  private open: FramedBatch | null = null;
  private recordStart = 0;
  private valueLengthAt = 0;
  private valueStart = 0;
  /** The records' headers as they are written into each (count first), or null for none. */
  private readonly headers: Buffer | null;

  /** With a pool, batch buffers come from it (give them back with `release` once sent). */
  constructor(
    readonly partitions: number,
    private readonly maxBatchBytes: number,
    public roundRobin = 0,
    private readonly pool: SlabPool | null = null,
    private readonly initialBytes = pool?.slabBytes ?? 256 * 1024,
    /** The headers every record carries (the same for all). */
    headers: readonly RecordHeader[] = [],
  ) {
    this.headers = headers.length ? encodeHeaders(headers) : null;
    this.current = new Array(partitions);
  }

  /** Gives every batch's buffers back to the pool: only once nothing reads them (Kafka acknowledged them). */
  release(): void {
    for (const b of this.closed) b.slab.release();
    for (const b of this.current) b?.slab.release();
  }

  /** Starts a record with key key[start, end) (null: a null key); its value goes into the returned slab. */
  begin(key: Buffer | null, start: number, end: number): AvroSlab {
    const p = key
      ? keyPartition(key, this.partitions, start, end)
      : (this.roundRobin = (this.roundRobin + 1) % this.partitions);
    const batch = (this.current[p] ??= new FramedBatch(p, this.initialBytes, this.pool));
    this.open = batch;
    this.writePrefix(batch, key, start, end);
    return batch.slab;
  }

  /** Ends the record begun last: its value is what was written into the slab since `begin`. */
  end(): void {
    const batch = this.open!;
    this.open = null;
    const s = batch.slab;
    const valueLength = s.pos - this.valueStart;
    const headers = this.headers;
    if (headers) s.append(headers, 0, headers.length);
    else s.byte(0); // no headers
    this.fixVarint(s, this.valueLengthAt, valueLength);
    this.fixVarint(s, this.recordStart, s.pos - this.recordStart - RESERVED);
    batch.count++;
    if (s.pos <= this.maxBatchBytes || batch.count === 1) return;
    // Too large with this record: the batch closes without it, and it opens the next one.
    const record = Buffer.from(s.buf.subarray(this.recordStart, s.pos));
    s.pos = this.recordStart;
    batch.count--;
    this.closed.push(batch);
    const next = new FramedBatch(batch.partition, this.initialBytes, this.pool);
    this.current[batch.partition] = next;
    this.moveRecord(record, next);
  }

  /** Every batch, closed ones first; per partition in the order written. */
  batches(): FramedBatch[] {
    return [...this.closed, ...this.current.filter((b): b is FramedBatch => b !== undefined && b.count > 0)];
  }

  /** Length (reserved), attributes, timestamp delta, offset delta, key, value length (reserved). */
  private writePrefix(batch: FramedBatch, key: Buffer | null, start: number, end: number): void {
    const s = batch.slab;
    const keyLength = key ? end - start : -1;
    s.ensure(RESERVED + 2 + 5 + 5 + Math.max(keyLength, 0) + RESERVED);
    this.recordStart = s.pos;
    let pos = s.pos + RESERVED;
    const buf = s.buf;
    buf[pos++] = 0;
    buf[pos++] = 0;
    pos = writeVarint(buf, pos, batch.count);
    pos = writeVarint(buf, pos, keyLength);
    if (key) for (let i = start; i < end; i++) buf[pos++] = key[i];
    this.valueLengthAt = pos;
    this.valueStart = pos + RESERVED;
    s.pos = this.valueStart;
  }

  /** Writes `n` as a varint at `at` (RESERVED bytes were left), moving what follows if it needs more or fewer. */
  private fixVarint(s: AvroSlab, at: number, n: number): void {
    const size = varintBytes(n);
    if (size !== RESERVED) {
      s.ensure(size);
      s.buf.copyWithin(at + size, at + RESERVED, s.pos);
      s.pos += size - RESERVED;
      if (at < this.valueStart) this.valueStart += size - RESERVED;
    }
    writeVarint(s.buf, at, n);
  }

  /** Writes a finished record (with its offset delta in another batch) into `batch` as its first. */
  private moveRecord(record: Buffer, batch: FramedBatch): void {
    // Skip the length varint, attributes, timestamp delta and offset delta to reach the key.
    let pos = 0;
    while (record[pos++] & 0x80);
    pos += 2;
    while (record[pos++] & 0x80);
    const rest = record.subarray(pos);
    const s = batch.slab;
    const body = 3 + rest.length;
    s.ensure(5 + body);
    s.pos = writeVarint(s.buf, s.pos, body);
    s.buf[s.pos++] = 0;
    s.buf[s.pos++] = 0;
    s.buf[s.pos++] = 0; // offset delta 0
    s.pos += rest.copy(s.buf, s.pos);
    batch.count = 1;
  }
}

/** One record header as FramedRecords writes it: its name's UTF-8 bytes and its value. */
export interface FramedHeader {
  name: Buffer;
  value: Buffer;
}

/** A record header's size in Kafka's record format: name length, name, value length, value. */
const headerBytes = (h: FramedHeader) =>
  varintBytes(h.name.length) + h.name.length + varintBytes(h.value.length) + h.value.length;

/** Writes a record header at `pos` of `buf`; returns the position after it. */
function writeHeader(buf: Buffer, pos: number, h: FramedHeader): number {
  pos = writeVarint(buf, pos, h.name.length);
  pos += h.name.copy(buf, pos);
  pos = writeVarint(buf, pos, h.value.length);
  return pos + h.value.copy(buf, pos);
}

/**
 * Records of several topics and partitions, each written in its final form into its partition's
 * record batch as it is added (the change stream's way to Kafka: its publisher knows every
 * record's partition), so that nothing is kept per record but its bytes: no record object, no
 * header object, and sending copies each batch once, whole. Every record carries the `common`
 * headers, then at most one of its own. Key, value and header are copied in `add`; the caller
 * may reuse them right after. A partition's batch that would pass `maxBatchBytes` with the next
 * record is closed and the partition goes on in a new one (a record alone may be larger: Kafka
 * then names it).
 */
export class FramedRecords {
  private readonly open = new Map<string, Array<FramedBatch | undefined>>();
  private closed: Array<{ topic: string; batch: FramedBatch }> = [];
  /** The common headers as written, after the count. */
  private readonly common: Buffer;
  private readonly commonCount: number;
  /** Records added since the last `take`, and their key and value bytes. */
  count = 0;
  bytes = 0;

  constructor(
    private readonly maxBatchBytes: number,
    common: readonly FramedHeader[] = [],
    private readonly initialBytes = 16 * 1024,
  ) {
    this.commonCount = common.length;
    const parts: Buffer[] = [];
    for (const h of common) {
      const b = Buffer.alloc(headerBytes(h));
      writeHeader(b, 0, h);
      parts.push(b);
    }
    this.common = Buffer.concat(parts);
  }

  add(
    topic: string,
    partition: number,
    key: Buffer | null,
    value: Buffer | null,
    header: FramedHeader | null,
  ): void {
    let batches = this.open.get(topic);
    if (!batches) this.open.set(topic, (batches = []));
    let batch = batches[partition];
    const keyLength = key ? key.length : -1;
    const valueLength = value ? value.length : -1;
    const headerCount = this.commonCount + (header ? 1 : 0);
    // The record's body but its offset delta (computed once: this runs for every change record).
    const rest =
      2 + // attributes, timestamp delta 0
      varintBytes(keyLength) +
      Math.max(keyLength, 0) +
      varintBytes(valueLength) +
      Math.max(valueLength, 0) +
      varintBytes(headerCount) +
      this.common.length +
      (header ? headerBytes(header) : 0);
    let body = rest + varintBytes(batch?.count ?? 0);
    if (batch && batch.count > 0 && batch.bytes + varintBytes(body) + body > this.maxBatchBytes) {
      this.closed.push({ topic, batch });
      batch = undefined;
      body = rest + 1; // offset delta 0
    }
    if (!batch) batches[partition] = batch = new FramedBatch(partition, this.initialBytes);
    const s = batch.slab;
    s.ensure(5 + body);
    const buf = s.buf;
    let pos = writeVarint(buf, s.pos, body);
    buf[pos++] = 0; // attributes
    buf[pos++] = 0; // timestamp delta
    pos = writeVarint(buf, pos, batch.count);
    pos = writeVarint(buf, pos, keyLength);
    if (key) pos += key.copy(buf, pos);
    pos = writeVarint(buf, pos, valueLength);
    if (value) pos += value.copy(buf, pos);
    pos = writeVarint(buf, pos, headerCount);
    pos += this.common.copy(buf, pos);
    if (header) pos = writeHeader(buf, pos, header);
    s.pos = pos;
    batch.count++;
    this.count++;
    this.bytes += Math.max(keyLength, 0) + Math.max(valueLength, 0);
  }

  /** Every batch written since the last `take`, per topic, in order per partition; starts afresh. */
  take(): Array<{ topic: string; batches: FramedBatch[] }> {
    const byTopic = new Map<string, FramedBatch[]>();
    const put = (topic: string, batch: FramedBatch) => {
      const list = byTopic.get(topic);
      if (list) list.push(batch);
      else byTopic.set(topic, [batch]);
    };
    for (const { topic, batch } of this.closed) put(topic, batch);
    for (const [topic, batches] of this.open) for (const b of batches) if (b && b.count > 0) put(topic, b);
    this.closed = [];
    this.open.clear();
    this.count = 0;
    this.bytes = 0;
    return [...byTopic].map(([topic, batches]) => ({ topic, batches }));
  }
}
