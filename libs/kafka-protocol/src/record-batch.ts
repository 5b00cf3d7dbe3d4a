import { gunzipSync } from 'node:zlib';
import { crc32c, lz4FrameDecompress, lz4IsNative } from '@pgferry/core';
import { readVarint, skipVarint, type Cursor } from './varint';

/**
 * Kafka's record batch, magic v2 (DefaultRecordBatch): the one definition of its layout, used by
 * the broker, the producer and the fetcher. Byte offsets from the start of the batch:
 *   0 baseOffset int64 | 8 batchLength int32 (bytes after this field) | 12 partitionLeaderEpoch int32
 *   16 magic int8 (2) | 17 crc uint32, CRC-32C of bytes 21..end | 21 attributes int16
 *   23 lastOffsetDelta int32 | 27 firstTimestamp int64 | 35 maxTimestamp int64
 *   43 producerId int64 | 51 producerEpoch int16 | 53 baseSequence int32 | 57 recordCount int32
 *   61 records (compressed as one stream when the attributes name a codec)
 * attributes: bits 0-2 compression codec, bit 3 timestamp type, bit 4 transactional, bit 5 control.
 * baseOffset and partitionLeaderEpoch lie outside the CRC, so the broker assigns offsets by
 * rewriting bytes 0..7 of a batch stored exactly as the producer sent it.
 */
export const BATCH_HEADER_BYTES = 61;
/** baseOffset and batchLength: the bytes batchLength does not count. */
export const LOG_OVERHEAD = 12;

export const Compression = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;
const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL = 0x10;
const CONTROL = 0x20;

export function codecName(codec: number): string {
  return CODEC_NAMES[codec] ?? `codec ${codec}`;
}

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

export type InvalidBatchReason = 'corrupt' | 'unsupported-magic' | 'truncated' | 'unsupported-codec';

/** A batch that breaks the format; `reason` lets the broker pick its Kafka error code. */
export class InvalidBatchError extends Error {
  constructor(
    message: string,
    readonly code: InvalidBatchReason,
  ) {
    super(message);
    this.name = 'InvalidBatchError';
  }
}

/** Reads the header of the batch at `pos`. Does not check the CRC (see checkBatch). */
export function readBatchHeader(buf: Buffer, pos = 0): BatchHeader {
  if (buf.length - pos < BATCH_HEADER_BYTES)
    throw new InvalidBatchError('record batch shorter than its header', 'truncated');
  const attributes = buf.readInt16BE(pos + 21);
  return {
    baseOffset: buf.readBigInt64BE(pos),
    size: buf.readInt32BE(pos + 8) + LOG_OVERHEAD,
    magic: buf.readInt8(pos + 16),
    crc: buf.readUInt32BE(pos + 17),
    attributes,
    compression: attributes & COMPRESSION_MASK,
    isTransactional: (attributes & TRANSACTIONAL) !== 0,
    isControl: (attributes & CONTROL) !== 0,
    lastOffsetDelta: buf.readInt32BE(pos + 23),
    firstTimestamp: buf.readBigInt64BE(pos + 27),
    maxTimestamp: buf.readBigInt64BE(pos + 35),
    producerId: buf.readBigInt64BE(pos + 43),
    producerEpoch: buf.readInt16BE(pos + 51),
    baseSequence: buf.readInt32BE(pos + 53),
    recordCount: buf.readInt32BE(pos + 57),
  };
}

/** The producer fields of a batch: Kafka deduplicates a batch by producerId, epoch and sequence. */
export interface BatchProducer {
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

/** No idempotent producer: what a plain producer (and the broker's own rewrites) put there. */
export const NO_PRODUCER: BatchProducer = { producerId: -1n, producerEpoch: -1, baseSequence: -1 };

export interface BatchHeaderFields {
  /** Bytes of the whole batch, header included. */
  bytes: number;
  count: number;
  producer: BatchProducer;
  firstTimestamp: bigint;
  maxTimestamp?: bigint;
  codec?: number;
  baseOffset?: bigint;
  /** Default count - 1; compaction keeps the original one when it removed records. */
  lastOffsetDelta?: number;
}

/**
 * Writes a batch header at buf[at, at + BATCH_HEADER_BYTES), but for its CRC, which covers the
 * records: call sealBatch once they are written.
 */
export function writeBatchHeader(buf: Buffer, at: number, h: BatchHeaderFields): void {
  buf.writeBigInt64BE(h.baseOffset ?? 0n, at);
  buf.writeInt32BE(h.bytes - LOG_OVERHEAD, at + 8);
  buf.writeInt32BE(-1, at + 12);
  buf[at + 16] = 2;
  buf.writeInt16BE(h.codec ?? Compression.none, at + 21);
  buf.writeInt32BE(h.lastOffsetDelta ?? h.count - 1, at + 23);
  buf.writeBigInt64BE(h.firstTimestamp, at + 27);
  buf.writeBigInt64BE(h.maxTimestamp ?? h.firstTimestamp, at + 35);
  buf.writeBigInt64BE(h.producer.producerId, at + 43);
  buf.writeInt16BE(h.producer.producerEpoch, at + 51);
  buf.writeInt32BE(h.producer.baseSequence, at + 53);
  buf.writeInt32BE(h.count, at + 57);
}

/** Writes the CRC-32C of the batch at buf[at, at + bytes) into its header. */
export function sealBatch(buf: Buffer, at: number, bytes: number): void {
  buf.writeUInt32BE(crc32c(buf, at + 21, at + bytes), at + 17);
}

/**
 * Checks the batch at `pos` of `buf` (within `end`): magic 2, a length that fits, a CRC that
 * matches, a record count consistent with lastOffsetDelta. Returns its size; throws
 * InvalidBatchError naming the problem, before anything in the header is trusted.
 */
export function checkBatch(buf: Buffer, pos: number, end = buf.length): number {
  if (end - pos < 17) throw new InvalidBatchError('truncated record batch', 'truncated');
  const magic = buf.readInt8(pos + 16);
  if (magic !== 2)
    throw new InvalidBatchError(
      `record batch magic ${magic} is not supported (only v2)`,
      'unsupported-magic',
    );
  if (end - pos < BATCH_HEADER_BYTES)
    throw new InvalidBatchError('record batch shorter than its header', 'truncated');
  const size = buf.readInt32BE(pos + 8) + LOG_OVERHEAD;
  if (size < BATCH_HEADER_BYTES)
    throw new InvalidBatchError(`record batch claims ${size} bytes, less than its header`, 'corrupt');
  if (pos + size > end) throw new InvalidBatchError('record batch length exceeds the request', 'truncated');
  const stored = buf.readUInt32BE(pos + 17);
  const actual = crc32c(buf, pos + 21, pos + size);
  if (stored !== actual)
    throw new InvalidBatchError(
      `record batch CRC mismatch (stored ${stored}, computed ${actual})`,
      'corrupt',
    );
  const count = buf.readInt32BE(pos + 57);
  const lastDelta = buf.readInt32BE(pos + 23);
  if (count < 0 || lastDelta < 0 || (count > 0 && lastDelta < count - 1))
    throw new InvalidBatchError(
      `record batch has ${count} records but lastOffsetDelta ${lastDelta}`,
      'corrupt',
    );
  return size;
}

/**
 * Splits a produce request's records field into batches and checks each (checkBatch); a batch
 * without records is refused too. Nothing of an invalid request is stored. baseOffset of each
 * header is its byte position in `records`.
 */
export function splitAndValidate(records: Buffer): BatchHeader[] {
  const out: BatchHeader[] = [];
  let pos = 0;
  while (pos < records.length) {
    const size = checkBatch(records, pos);
    const h = readBatchHeader(records, pos);
    if (h.recordCount === 0) throw new InvalidBatchError('record batch has no records', 'corrupt');
    out.push({ ...h, baseOffset: BigInt(pos) });
    pos += size;
  }
  return out;
}

/** True when this process can read the records of a batch so compressed. */
export function canDecode(compression: number): boolean {
  return (
    compression === Compression.none || compression === Compression.gzip || compression === Compression.lz4
  );
}

/** The codec the broker writes back a batch of `compression` with (lz4 only where it compresses). */
export function rebuildCodec(compression: number): 'none' | 'gzip' | 'lz4' {
  if (compression === Compression.gzip) return 'gzip';
  return compression === Compression.lz4 && lz4IsNative ? 'lz4' : 'none';
}

/**
 * The records of the batch at buf[start, end) (start at the batch's first byte), decompressed
 * when its attributes name a codec: buf itself and the records' range for an uncompressed batch
 * (no copy). Throws InvalidBatchError for a codec pgferry does not read or a stream that does
 * not decompress.
 */
export function batchRecords(
  buf: Buffer,
  start: number,
  end: number,
): { buf: Buffer; start: number; end: number } {
  const codec = buf.readInt16BE(start + 21) & COMPRESSION_MASK;
  if (codec === Compression.none) return { buf, start: start + BATCH_HEADER_BYTES, end };
  if (!canDecode(codec))
    throw new InvalidBatchError(
      `is compressed with ${codecName(codec)}, which pgferry does not read (it reads lz4 and gzip): produce this topic with compression.type lz4, gzip or none`,
      'unsupported-codec',
    );
  let records: Buffer;
  try {
    records =
      codec === Compression.lz4
        ? lz4FrameDecompress(buf, start + BATCH_HEADER_BYTES, end)
        : gunzipSync(buf.subarray(start + BATCH_HEADER_BYTES, end));
  } catch (err) {
    throw new InvalidBatchError(
      `does not decompress (${codecName(codec)}): ${(err as Error).message}`,
      'corrupt',
    );
  }
  return { buf: records, start: 0, end: records.length };
}

/**
 * Checks that a produced batch holds what its header says (Kafka's broker does the same in its
 * LogValidator): `recordCount` records with offset deltas 0..count-1 that exactly fill the batch,
 * read after decompression for the codecs pgferry reads (a batch of another codec is stored as
 * sent). The broker assigns offsets from the header alone, so a header that lies would hand
 * consumers offsets without records, or records under offsets that are not theirs.
 * `pos` is the batch's first byte in `buf`; throws InvalidBatchError ('corrupt') naming the lie.
 */
export function checkProducedRecords(buf: Buffer, pos: number, h: BatchHeader): void {
  if (h.lastOffsetDelta !== h.recordCount - 1)
    throw new InvalidBatchError(
      `record batch has ${h.recordCount} records but lastOffsetDelta ${h.lastOffsetDelta}; a produced batch's offset deltas run from 0 to count - 1`,
      'corrupt',
    );
  if (h.compression !== Compression.none && !canDecode(h.compression)) return;
  const r = batchRecords(buf, pos, pos + h.size);
  const c: Cursor = { buf: r.buf, pos: r.start };
  const lie = (what: string) =>
    new InvalidBatchError(`record batch header says ${h.recordCount} records, but ${what}`, 'corrupt');
  try {
    for (let i = 0; i < h.recordCount; i++) {
      if (c.pos >= r.end) throw lie(`it holds ${i}`);
      const length = readVarint(c);
      const start = c.pos;
      if (length < 3 || start + length > r.end)
        throw lie(`record ${i} claims ${length} bytes and ${r.end - start} remain`);
      // attributes int8 | timestampDelta varlong | offsetDelta varint | ...
      c.pos = start + 1;
      skipVarint(c);
      const delta = readVarint(c);
      if (c.pos > start + length) throw lie(`record ${i} is shorter than its fields`);
      if (delta !== i) throw lie(`record ${i} has offset delta ${delta}`);
      c.pos = start + length;
    }
  } catch (err) {
    if (err instanceof InvalidBatchError) throw err;
    throw lie(`its records do not parse (${(err as Error).message})`);
  }
  if (c.pos !== r.end) throw lie(`${r.end - c.pos} bytes follow its last record`);
}
