import { gunzipSync, gzipSync } from 'node:zlib';
import { Reader, Writer } from './buffer-io';
import { crc32c, lz4FrameCompress, lz4FrameDecompress, lz4IsNative } from '@pgferry/core';

/**
 * Record batch (magic v2) layout, byte offsets from the start of the batch:
 *   0 baseOffset int64 | 8 batchLength int32 (bytes after this field) | 12 partitionLeaderEpoch int32
 *   16 magic int8 | 17 crc uint32 (CRC-32C of bytes 21..end) | 21 attributes int16
 *   23 lastOffsetDelta int32 | 27 firstTimestamp int64 | 35 maxTimestamp int64
 *   43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 | 57 recordCount int32
 *   61 records
 * baseOffset and partitionLeaderEpoch lie outside the CRC, so the broker can assign offsets by
 * rewriting bytes 0..7 of a batch stored exactly as the producer sent it.
 */
export const BATCH_HEADER_SIZE = 61;
export const LOG_OVERHEAD = 12;

export const Compression = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;

export interface BatchHeader {
  baseOffset: bigint;
  /** Total bytes of the batch, header included. */
  size: number;
  magic: number;
  crc: number;
  attributes: number;
  compression: number;
  isTransactional: boolean;
  isControl: boolean;
  lastOffsetDelta: number;
  firstTimestamp: bigint;
  maxTimestamp: bigint;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export class InvalidBatchError extends Error {
  constructor(
    message: string,
    readonly code: 'corrupt' | 'unsupported-magic' | 'truncated',
  ) {
    super(message);
    this.name = 'InvalidBatchError';
  }
}

/** Reads the header of the batch at `pos`. Does not check the CRC (see validateBatch). */
export function readBatchHeader(buf: Buffer, pos = 0): BatchHeader {
  if (buf.length - pos < BATCH_HEADER_SIZE)
    throw new InvalidBatchError('record batch shorter than its header', 'truncated');
  const batchLength = buf.readInt32BE(pos + 8);
  const attributes = buf.readInt16BE(pos + 21);
  return {
    baseOffset: buf.readBigInt64BE(pos),
    size: batchLength + LOG_OVERHEAD,
    magic: buf.readInt8(pos + 16),
    crc: buf.readUInt32BE(pos + 17),
    attributes,
    compression: attributes & 0x07,
    isTransactional: (attributes & 0x10) !== 0,
    isControl: (attributes & 0x20) !== 0,
    lastOffsetDelta: buf.readInt32BE(pos + 23),
    firstTimestamp: buf.readBigInt64BE(pos + 27),
    maxTimestamp: buf.readBigInt64BE(pos + 35),
    producerId: buf.readBigInt64BE(pos + 43),
    producerEpoch: buf.readInt16BE(pos + 51),
    baseSequence: buf.readInt32BE(pos + 53),
    recordCount: buf.readInt32BE(pos + 57),
  };
}

/**
 * Splits a produce request's records field into batches and checks each: magic 2, a length that
 * fits, a CRC that matches, a record count consistent with lastOffsetDelta. Throws
 * InvalidBatchError naming the problem; nothing of an invalid request is stored.
 */
export function splitAndValidate(records: Buffer): BatchHeader[] {
  const out: BatchHeader[] = [];
  let pos = 0;
  while (pos < records.length) {
    if (records.length - pos < 17) throw new InvalidBatchError('truncated record batch', 'truncated');
    const magic = records.readInt8(pos + 16);
    if (magic !== 2)
      throw new InvalidBatchError(
        `record batch magic ${magic} is not supported (only v2)`,
        'unsupported-magic',
      );
    const h = readBatchHeader(records, pos);
    if (h.size < BATCH_HEADER_SIZE || pos + h.size > records.length)
      throw new InvalidBatchError('record batch length exceeds the request', 'truncated');
    const crc = crc32c(records, pos + 21, pos + h.size);
    if (crc !== h.crc)
      throw new InvalidBatchError(`record batch CRC mismatch (stored ${h.crc}, computed ${crc})`, 'corrupt');
    if (
      h.recordCount < 0 ||
      h.lastOffsetDelta < 0 ||
      (h.recordCount > 0 && h.lastOffsetDelta < h.recordCount - 1)
    ) {
      throw new InvalidBatchError(
        `record batch has ${h.recordCount} records but lastOffsetDelta ${h.lastOffsetDelta}`,
        'corrupt',
      );
    }
    if (h.recordCount === 0) throw new InvalidBatchError('record batch has no records', 'corrupt');
    out.push({ ...h, baseOffset: BigInt(pos) });
    pos += h.size;
  }
  return out;
}

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

export interface KafkaRecord {
  offset: bigint;
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** True when this process can decompress the batch (none, gzip and lz4; others are stored opaque). */
export function canDecode(compression: number): boolean {
  return (
    compression === Compression.none || compression === Compression.gzip || compression === Compression.lz4
  );
}

/** The codec buildBatch writes for a batch of `compression` (lz4 only where it compresses). */
export function rebuildCodec(compression: number): 'none' | 'gzip' | 'lz4' {
  if (compression === Compression.gzip) return 'gzip';
  return compression === Compression.lz4 && lz4IsNative ? 'lz4' : 'none';
}

/** Decodes the records of the batch at `pos`. Throws for compression codecs it cannot read. */
export function decodeRecords(buf: Buffer, pos = 0): KafkaRecord[] {
  const h = readBatchHeader(buf, pos);
  let body = buf.subarray(pos + BATCH_HEADER_SIZE, pos + h.size);
  if (h.compression === Compression.gzip) body = gunzipSync(body);
  else if (h.compression === Compression.lz4) body = lz4FrameDecompress(body);
  else if (h.compression !== Compression.none)
    throw new InvalidBatchError(`cannot decode compression codec ${h.compression}`, 'corrupt');
  const r = new Reader(body);
  const out: KafkaRecord[] = [];
  for (let i = 0; i < h.recordCount; i++) {
    const len = r.varint();
    const end = r.pos + len;
    r.int8();
    const tsDelta = r.varlong();
    const offDelta = r.varint();
    const key = r.varbytes();
    const value = r.varbytes();
    const nh = r.varint();
    const headers: RecordHeader[] = [];
    for (let j = 0; j < nh; j++) {
      const hk = r.varbytes();
      headers.push({ key: hk ? hk.toString('utf8') : '', value: r.varbytes() });
    }
    r.pos = end;
    out.push({
      offset: h.baseOffset + BigInt(offDelta),
      timestamp: h.firstTimestamp + tsDelta,
      key,
      value,
      headers,
    });
  }
  return out;
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
 * Builds a v2 record batch. Record offsets are taken from `records[i].offset` relative to
 * `baseOffset` (default: the first record's offset), so gaps are preserved.
 */
export function buildBatch(
  records: Array<Partial<KafkaRecord> & { value: Buffer | null }>,
  options: BuildBatchOptions = {},
): Buffer {
  const baseOffset = options.baseOffset ?? records[0]?.offset ?? 0n;
  const now = BigInt(Date.now());
  const firstTs = records[0]?.timestamp ?? now;
  let maxTs = firstTs;
  const body = new Writer(1024);
  records.forEach((rec, i) => {
    const ts = rec.timestamp ?? firstTs;
    if (ts > maxTs) maxTs = ts;
    const r = new Writer(64);
    r.int8(0);
    r.varlong(ts - firstTs);
    r.varint(Number((rec.offset ?? baseOffset + BigInt(i)) - baseOffset));
    r.varbytes(rec.key ?? null);
    r.varbytes(rec.value);
    const headers = rec.headers ?? [];
    r.varint(headers.length);
    for (const hd of headers) {
      r.varbytes(Buffer.from(hd.key, 'utf8'));
      r.varbytes(hd.value);
    }
    const bytes = r.finish();
    body.varint(bytes.length);
    body.raw(bytes);
  });
  let payload = body.finish();
  let compression = 0;
  if (options.compression === 'gzip') {
    payload = gzipSync(payload);
    compression = Compression.gzip;
  } else if (options.compression === 'lz4') {
    payload = lz4FrameCompress(payload);
    compression = Compression.lz4;
  }
  const lastDelta =
    options.lastOffsetDelta ??
    (records.length
      ? Number((records[records.length - 1].offset ?? baseOffset + BigInt(records.length - 1)) - baseOffset)
      : 0);
  const w = new Writer(BATCH_HEADER_SIZE + payload.length);
  w.int64(baseOffset);
  w.int32(BATCH_HEADER_SIZE - LOG_OVERHEAD + payload.length);
  w.int32(-1);
  w.int8(2);
  w.uint32(0);
  w.int16(compression);
  w.int32(lastDelta);
  w.int64(firstTs);
  w.int64(maxTs);
  w.int64(options.producerId ?? -1n);
  w.int16(options.producerEpoch ?? -1);
  w.int32(options.baseSequence ?? -1);
  w.int32(records.length);
  w.raw(payload);
  const out = Buffer.from(w.finish());
  out.writeUInt32BE(crc32c(out, 21, out.length), 17);
  return out;
}
