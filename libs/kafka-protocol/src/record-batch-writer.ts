import { crc32c } from '@pgferry/core';

/**
 * Kafka record batches (magic v2) written straight from encoded keys and values, one pass to size
 * and one to write, into a single Buffer: no Message objects, no per-record Buffers.
 *
 * Batch header, byte offsets from the start of the batch (Kafka's DefaultRecordBatch):
 *   0 baseOffset int64 (0: the broker assigns offsets) | 8 batchLength int32 (bytes after it)
 *   12 partitionLeaderEpoch int32 (-1) | 16 magic int8 (2) | 17 crc uint32, CRC-32C of 21..end
 *   21 attributes int16 (0: no compression, not transactional) | 23 lastOffsetDelta int32
 *   27 firstTimestamp int64 | 35 maxTimestamp int64 | 43 producerId int64 | 51 producerEpoch int16
 *   53 baseSequence int32 | 57 recordCount int32 | 61 records
 * Each record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
 * key length varint (-1 for null) and bytes, value length varint and bytes, header count varint;
 * every varint zig-zag encoded.
 */
export const BATCH_HEADER_BYTES = 61;
/** The compression codecs of the attributes' bits 0-2 that pgferry writes. */
export const CODEC_NONE = 0;
export const CODEC_LZ4 = 3;

/**
 * The records bound for one partition, in the order Kafka must store them. A key or value is a
 * byte range of a buffer (null: a null key or value); `pushRanges` takes ranges of a shared slab
 * as they are, so a snapshot row costs no Buffer view and no object here.
 */
export class PartitionRecords {
  private readonly keyBufs: Array<Buffer | null> = [];
  private readonly valueBufs: Array<Buffer | null> = [];
  /** Per record: key start, key end, value start, value end. */
  private readonly ranges: number[] = [];

  constructor(readonly partition: number) {}

  get length(): number {
    return this.valueBufs.length;
  }

  push(key: Buffer | null, value: Buffer | null): void {
    this.keyBufs.push(key);
    this.valueBufs.push(value);
    this.ranges.push(0, key ? key.length : 0, 0, value ? value.length : 0);
  }

  /** A record whose key is buf[keyStart, keyEnd) (null when `keyed` is false) and value buf[valueStart, valueEnd). */
  pushRanges(
    buf: Buffer,
    keyed: boolean,
    keyStart: number,
    keyEnd: number,
    valueStart: number,
    valueEnd: number,
  ): void {
    this.keyBufs.push(keyed ? buf : null);
    this.valueBufs.push(buf);
    this.ranges.push(keyStart, keyEnd, valueStart, valueEnd);
  }

  /** Record i's key length, or -1 for a null key. */
  keyLength(i: number): number {
    return this.keyBufs[i] ? this.ranges[4 * i + 1] - this.ranges[4 * i] : -1;
  }

  /** Record i's value length, or -1 for a null value. */
  valueLength(i: number): number {
    return this.valueBufs[i] ? this.ranges[4 * i + 3] - this.ranges[4 * i + 2] : -1;
  }

  /** Copies record i's key (or value) to dst at pos; returns the end. */
  copyKey(i: number, dst: Buffer, pos: number): number {
    return copyRange(this.keyBufs[i]!, this.ranges[4 * i], this.ranges[4 * i + 1], dst, pos);
  }
  copyValue(i: number, dst: Buffer, pos: number): number {
    return copyRange(this.valueBufs[i]!, this.ranges[4 * i + 2], this.ranges[4 * i + 3], dst, pos);
  }

  /** The keys, as views (for tests and diagnostics; the batch writer copies the ranges). */
  get keys(): Array<Buffer | null> {
    return this.keyBufs.map((b, i) => b && b.subarray(this.ranges[4 * i], this.ranges[4 * i + 1]));
  }
  get values(): Array<Buffer | null> {
    return this.valueBufs.map((b, i) => b && b.subarray(this.ranges[4 * i + 2], this.ranges[4 * i + 3]));
  }
}

/** The producer fields of a batch: Kafka deduplicates a batch by producerId, epoch and sequence. */
export interface BatchProducer {
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

/** Bytes of the zig-zag varint of a value in [-1, 2^31). */
export function varintBytes(n: number): number {
  const z = n < 0 ? 1 : n * 2;
  return z < 0x80 ? 1 : z < 0x4000 ? 2 : z < 0x200000 ? 3 : z < 0x10000000 ? 4 : 5;
}

/** Writes the zig-zag varint of a value in [-1, 2^31) at pos; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  let z = n < 0 ? 1 : n * 2;
  while (z >= 0x80) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z = Math.floor(z / 128);
  }
  buf[pos++] = z;
  return pos;
}

/** Copies src[start, end) to dst at pos, returns the end; a loop for small ranges, where Buffer#copy's call costs more. */
function copyRange(src: Buffer, start: number, end: number, dst: Buffer, pos: number): number {
  const n = end - start;
  if (n >= 48) return pos + src.copy(dst, pos, start, end);
  for (let i = 0; i < n; i++) dst[pos + i] = src[start + i];
  return pos + n;
}

/** Bytes of a record's body (after its length varint), from its key and value lengths (-1: null). */
function bodyBytes(delta: number, k: number, v: number): number {
  // attributes, timestampDelta 0, offsetDelta, key, value, header count 0
  return 1 + 1 + varintBytes(delta) + varintBytes(k) + Math.max(k, 0) + varintBytes(v) + Math.max(v, 0) + 1;
}

/**
 * Where the batch that starts at record `from` ends: as many records as fit in `maxBytes`
 * (at least one, so that an oversized record reaches the broker and its error names it).
 * Returns the end index and the batch's exact size.
 */
export function planBatch(
  records: PartitionRecords,
  from: number,
  maxBytes: number,
): { to: number; bytes: number } {
  let bytes = BATCH_HEADER_BYTES;
  let to = from;
  const n = records.length;
  while (to < n) {
    const body = bodyBytes(to - from, records.keyLength(to), records.valueLength(to));
    const size = varintBytes(body) + body;
    if (to > from && bytes + size > maxBytes) break;
    bytes += size;
    to++;
  }
  return { to, bytes };
}

/**
 * The batch header of a batch of `bytes` bytes holding `count` records, all at `timestampMs`,
 * at buf[at, at + BATCH_HEADER_BYTES), but for its CRC (buf[at + 17, at + 21)), which covers the
 * records and is written once they are.
 */
export function writeBatchHeader(
  buf: Buffer,
  at: number,
  bytes: number,
  count: number,
  producer: BatchProducer,
  timestampMs: number,
  codec: number = CODEC_NONE,
): void {
  buf.writeBigInt64BE(0n, at);
  buf.writeInt32BE(bytes - 12, at + 8);
  buf.writeInt32BE(-1, at + 12);
  buf[at + 16] = 2;
  buf.writeInt16BE(codec, at + 21);
  buf.writeInt32BE(count - 1, at + 23);
  const ts = BigInt(timestampMs);
  buf.writeBigInt64BE(ts, at + 27);
  buf.writeBigInt64BE(ts, at + 35);
  buf.writeBigInt64BE(producer.producerId, at + 43);
  buf.writeInt16BE(producer.producerEpoch, at + 51);
  buf.writeInt32BE(producer.baseSequence, at + 53);
  buf.writeInt32BE(count, at + 57);
}

/**
 * Writes records [from, to) as one batch of `bytes` bytes (planBatch's figure), all with
 * `timestampMs`. Pure: the same arguments give the same bytes, so a retried batch is the batch
 * Kafka may already hold, and its sequence lets Kafka drop it as a duplicate.
 */
export function writeRecordBatch(
  records: PartitionRecords,
  from: number,
  to: number,
  bytes: number,
  producer: BatchProducer,
  timestampMs: number,
): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  writeRecordBatchInto(records, from, to, bytes, producer, timestampMs, buf, 0);
  return buf;
}

/** writeRecordBatch into buf[at, at + bytes), e.g. straight into a produce request. */
export function writeRecordBatchInto(
  records: PartitionRecords,
  from: number,
  to: number,
  bytes: number,
  producer: BatchProducer,
  timestampMs: number,
  buf: Buffer,
  at: number,
): void {
  writeBatchHeader(buf, at, bytes, to - from, producer, timestampMs);
  let pos = at + BATCH_HEADER_BYTES;
  for (let i = from; i < to; i++) {
    const k = records.keyLength(i);
    const v = records.valueLength(i);
    const delta = i - from;
    pos = writeVarint(buf, pos, bodyBytes(delta, k, v));
    buf[pos++] = 0;
    buf[pos++] = 0;
    pos = writeVarint(buf, pos, delta);
    if (k >= 0) {
      pos = writeVarint(buf, pos, k);
      pos = records.copyKey(i, buf, pos);
    } else buf[pos++] = 1;
    if (v >= 0) {
      pos = writeVarint(buf, pos, v);
      pos = records.copyValue(i, buf, pos);
    } else buf[pos++] = 1;
    buf[pos++] = 0;
  }
  if (pos !== at + bytes) throw new RangeError(`record batch is ${pos - at} bytes, planned ${bytes}`);
  buf.writeUInt32BE(crc32c(buf, at + 21, at + bytes), at + 17);
}
