import { gzipSync } from 'node:zlib';
import { lz4FrameCompress } from '@pgferry/core';
import {
  BATCH_HEADER_BYTES,
  Compression,
  NO_PRODUCER,
  sealBatch,
  writeBatchHeader,
  type BatchProducer,
} from './record-batch';
import { varintBytes, varlongBytes, writeVarint, writeVarlong } from './varint';

/**
 * Kafka record batches (magic v2, layout in record-batch.ts) written straight from encoded keys
 * and values, one pass to size and one to write, into a single buffer: no Message objects, no
 * per-record Buffers. Each record: length varint, attributes int8 (0), timestampDelta varlong,
 * offsetDelta varint, key length varint (-1 for null) and bytes, value length varint and bytes,
 * header count varint and the headers (key length varint and UTF-8 bytes, value length varint
 * and bytes).
 */

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/** Headers as they go into a record: the count and every header, encoded once. */
export function encodeHeaders(headers: readonly RecordHeader[]): Buffer {
  let size = varintBytes(headers.length);
  const keys = headers.map((h) => Buffer.from(h.key, 'utf8'));
  headers.forEach((h, i) => {
    size += varintBytes(keys[i].length) + keys[i].length;
    size += h.value ? varintBytes(h.value.length) + h.value.length : 1;
  });
  const out = Buffer.allocUnsafe(size);
  let pos = writeVarint(out, 0, headers.length);
  headers.forEach((h, i) => {
    pos = writeVarint(out, pos, keys[i].length);
    pos += keys[i].copy(out, pos);
    if (!h.value) pos = writeVarint(out, pos, -1);
    else {
      pos = writeVarint(out, pos, h.value.length);
      pos += h.value.copy(out, pos);
    }
  });
  return out;
}

/**
 * The records bound for one partition, in the order Kafka must store them. A key or value is a
 * byte range of a buffer (null: a null key or value); `pushRanges` takes ranges of a shared slab
 * as they are, so a snapshot row costs no Buffer view and no object here. Records may carry
 * headers (encodeHeaders) and, for a batch rebuilt by the broker, their own offset and
 * timestamp deltas.
 */
export class PartitionRecords {
  private readonly keyBufs: Array<Buffer | null> = [];
  private readonly valueBufs: Array<Buffer | null> = [];
  /** Per record: key start, key end, value start, value end. */
  private readonly ranges: number[] = [];
  /** Encoded headers per record, once one record has any. */
  private headerBlocks: Array<Buffer | null> | null = null;
  private offsetDeltas: number[] | null = null;
  private timestampDeltas: bigint[] | null = null;

  constructor(readonly partition: number) {}

  get length(): number {
    return this.valueBufs.length;
  }

  push(key: Buffer | null, value: Buffer | null, headers: Buffer | null = null): void {
    this.keyBufs.push(key);
    this.valueBufs.push(value);
    this.ranges.push(0, key ? key.length : 0, 0, value ? value.length : 0);
    this.pushHeaders(headers);
    this.pushDeltas(this.length - 1, 0n);
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
    this.pushHeaders(null);
    this.pushDeltas(this.length - 1, 0n);
  }

  /**
   * A record at its own offset and timestamp delta from the batch's baseOffset and first
   * timestamp: for batches the broker rebuilds (compaction keeps offsets and timestamps). Records
   * pushed so are written as one batch from record 0; deltas must not decrease.
   */
  pushAt(
    key: Buffer | null,
    value: Buffer | null,
    headers: Buffer | null,
    offsetDelta: number,
    timestampDelta: bigint,
  ): void {
    const i = this.length;
    this.keyBufs.push(key);
    this.valueBufs.push(value);
    this.ranges.push(0, key ? key.length : 0, 0, value ? value.length : 0);
    this.pushHeaders(headers);
    this.offsetDeltas ??= Array.from({ length: i }, (_, j) => j);
    this.timestampDeltas ??= new Array<bigint>(i).fill(0n);
    this.pushDeltas(offsetDelta, timestampDelta);
  }

  private pushHeaders(headers: Buffer | null): void {
    if (headers && !this.headerBlocks) this.headerBlocks = new Array(this.length - 1).fill(null);
    this.headerBlocks?.push(headers);
  }

  /** Records' own deltas are kept only once pushAt was used. */
  private pushDeltas(offsetDelta: number, timestampDelta: bigint): void {
    if (!this.offsetDeltas) return;
    this.offsetDeltas.push(offsetDelta);
    this.timestampDeltas!.push(timestampDelta);
  }

  /** Record i's key length, or -1 for a null key. */
  keyLength(i: number): number {
    return this.keyBufs[i] ? this.ranges[4 * i + 1] - this.ranges[4 * i] : -1;
  }

  /** Record i's value length, or -1 for a null value. */
  valueLength(i: number): number {
    return this.valueBufs[i] ? this.ranges[4 * i + 3] - this.ranges[4 * i + 2] : -1;
  }

  /** Record i's encoded headers, or null for none. */
  headers(i: number): Buffer | null {
    return this.headerBlocks ? this.headerBlocks[i] : null;
  }

  /** Record i's offset delta in a batch that starts at record `from` (pushAt: its own). */
  offsetDelta(i: number, from: number): number {
    return this.offsetDeltas ? this.offsetDeltas[i] : i - from;
  }

  /** Record i's timestamp delta from its batch's first timestamp (0 but for pushAt). */
  timestampDelta(i: number): bigint {
    return this.timestampDeltas ? this.timestampDeltas[i] : 0n;
  }

  /** The largest timestamp delta of records [from, to). */
  maxTimestampDelta(from: number, to: number): bigint {
    let max = 0n;
    if (this.timestampDeltas)
      for (let i = from; i < to; i++) if (this.timestampDeltas[i] > max) max = this.timestampDeltas[i];
    return max;
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

/** Copies src[start, end) to dst at pos, returns the end; a loop for small ranges, where Buffer#copy's call costs more. */
function copyRange(src: Buffer, start: number, end: number, dst: Buffer, pos: number): number {
  const n = end - start;
  if (n >= 48) return pos + src.copy(dst, pos, start, end);
  for (let i = 0; i < n; i++) dst[pos + i] = src[start + i];
  return pos + n;
}

/** Bytes of a record's body (after its length varint). */
function bodyBytes(records: PartitionRecords, i: number, from: number): number {
  const k = records.keyLength(i);
  const v = records.valueLength(i);
  const h = records.headers(i);
  return (
    1 +
    varlongBytes(records.timestampDelta(i)) +
    varintBytes(records.offsetDelta(i, from)) +
    varintBytes(k) +
    Math.max(k, 0) +
    varintBytes(v) +
    Math.max(v, 0) +
    (h ? h.length : 1)
  );
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
    const body = bodyBytes(records, to, from);
    const size = varintBytes(body) + body;
    if (to > from && bytes + size > maxBytes) break;
    bytes += size;
    to++;
  }
  return { to, bytes };
}

/**
 * Writes records [from, to) as one uncompressed batch of `bytes` bytes (planBatch's figure) into
 * buf[at, at + bytes), the first at `timestampMs`. Pure: the same arguments give the same bytes,
 * so a retried batch is the batch Kafka may already hold, and its sequence lets Kafka drop it as
 * a duplicate.
 */
export function writeRecordBatchInto(
  records: PartitionRecords,
  from: number,
  to: number,
  bytes: number,
  producer: BatchProducer,
  timestampMs: number | bigint,
  buf: Buffer,
  at: number,
  baseOffset = 0n,
): void {
  const first = BigInt(timestampMs);
  writeBatchHeader(buf, at, {
    bytes,
    count: to - from,
    producer,
    firstTimestamp: first,
    maxTimestamp: first + records.maxTimestampDelta(from, to),
    baseOffset,
    lastOffsetDelta: to > from ? records.offsetDelta(to - 1, from) : 0,
  });
  let pos = at + BATCH_HEADER_BYTES;
  for (let i = from; i < to; i++) {
    const k = records.keyLength(i);
    const v = records.valueLength(i);
    const h = records.headers(i);
    pos = writeVarint(buf, pos, bodyBytes(records, i, from));
    buf[pos++] = 0;
    pos = writeVarlong(buf, pos, records.timestampDelta(i));
    pos = writeVarint(buf, pos, records.offsetDelta(i, from));
    if (k >= 0) {
      pos = writeVarint(buf, pos, k);
      pos = records.copyKey(i, buf, pos);
    } else buf[pos++] = 1;
    if (v >= 0) {
      pos = writeVarint(buf, pos, v);
      pos = records.copyValue(i, buf, pos);
    } else buf[pos++] = 1;
    if (h) pos += h.copy(buf, pos);
    else buf[pos++] = 0;
  }
  // planBatch sized the batch from the same records: only a pgferry bug makes them differ.
  if (pos !== at + bytes) throw new RangeError(`record batch is ${pos - at} bytes, planned ${bytes}`);
  sealBatch(buf, at, bytes);
}

/** writeRecordBatchInto into a buffer of its own. */
export function writeRecordBatch(
  records: PartitionRecords,
  from: number,
  to: number,
  bytes: number,
  producer: BatchProducer,
  timestampMs: number | bigint,
): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  writeRecordBatchInto(records, from, to, bytes, producer, timestampMs, buf, 0);
  return buf;
}

/**
 * `batch` (an uncompressed batch) with its records compressed as one stream under `codec`
 * (Kafka's compression.type), header and CRC rewritten. Deterministic, so a retried batch is
 * the batch Kafka may already hold.
 */
export function compressBatch(batch: Buffer, codec: 'gzip' | 'lz4'): Buffer {
  const records = batch.subarray(BATCH_HEADER_BYTES);
  const body = codec === 'gzip' ? gzipSync(records) : lz4FrameCompress(records);
  const out = Buffer.allocUnsafe(BATCH_HEADER_BYTES + body.length);
  batch.copy(out, 0, 0, BATCH_HEADER_BYTES);
  body.copy(out, BATCH_HEADER_BYTES);
  out.writeInt32BE(out.length - 12, 8);
  out.writeInt16BE((batch.readInt16BE(21) & ~0x07) | Compression[codec], 21);
  sealBatch(out, 0, out.length);
  return out;
}

export interface BuildRecord {
  offset?: bigint;
  timestamp?: bigint;
  key?: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeader[];
}

export interface BuildBatchOptions {
  baseOffset?: bigint;
  /** Keep this lastOffsetDelta even when records were removed (compaction keeps offsets stable). */
  lastOffsetDelta?: number;
  producerId?: bigint;
  producerEpoch?: number;
  baseSequence?: number;
  compression?: 'none' | 'gzip' | 'lz4';
}

/**
 * A batch of records given as objects, for the broker's own writes (compaction, the schema log)
 * and tests. Record offsets are taken from `records[i].offset` relative to `baseOffset` (default:
 * the first record's offset), so gaps are kept; timestamps likewise (default: now).
 */
export function buildBatch(records: BuildRecord[], options: BuildBatchOptions = {}): Buffer {
  const baseOffset = options.baseOffset ?? records[0]?.offset ?? 0n;
  const firstTs = records[0]?.timestamp ?? BigInt(Date.now());
  const p = new PartitionRecords(0);
  records.forEach((r, i) =>
    p.pushAt(
      r.key ?? null,
      r.value,
      r.headers?.length ? encodeHeaders(r.headers) : null,
      Number((r.offset ?? baseOffset + BigInt(i)) - baseOffset),
      (r.timestamp ?? firstTs) - firstTs,
    ),
  );
  const producer = {
    producerId: options.producerId ?? NO_PRODUCER.producerId,
    producerEpoch: options.producerEpoch ?? NO_PRODUCER.producerEpoch,
    baseSequence: options.baseSequence ?? NO_PRODUCER.baseSequence,
  };
  const { to, bytes } = planBatch(p, 0, Infinity);
  const batch = writeRecordBatch(p, 0, to, bytes, producer, firstTs);
  batch.writeBigInt64BE(baseOffset, 0);
  if (options.lastOffsetDelta !== undefined) {
    batch.writeInt32BE(options.lastOffsetDelta, 23);
    sealBatch(batch, 0, batch.length);
  }
  const codec = options.compression ?? 'none';
  return codec === 'none' ? batch : compressBatch(batch, codec);
}
