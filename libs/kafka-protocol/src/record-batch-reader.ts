import { gunzipSync } from 'node:zlib';
import { crc32c, DataError, lz4FrameDecompress } from '@pgferry/core';

/**
 * Reads Kafka record batches (magic v2) as a Fetch response carries them, without a Message
 * object or a copy per record: values are subarrays of the response's buffer. The layout is
 * record-batch-writer.ts's (Kafka's DefaultRecordBatch):
 *   0 baseOffset int64 | 8 batchLength int32 (bytes after it) | 12 partitionLeaderEpoch int32
 *   16 magic int8 | 17 crc uint32, CRC-32C of 21..end | 21 attributes int16 | 23 lastOffsetDelta int32
 *   27 firstTimestamp int64 | 35 maxTimestamp int64 | 43 producerId int64 | 51 producerEpoch int16
 *   53 baseSequence int32 | 57 recordCount int32 | 61 records
 * attributes: bits 0-2 compression codec, bit 3 timestamp type, bit 4 transactional, bit 5 control.
 */

/** Bytes before a batch's records; batchLength counts from byte 12. */
const HEADER_BYTES = 61;
const LENGTH_END = 12;
const COMPRESSION_MASK = 0x07;
const TRANSACTIONAL = 0x10;
const CONTROL = 0x20;
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const CODEC_NONE = 0;
const CODEC_GZIP = 1;
const CODEC_LZ4 = 3;

/** One complete batch of a partition's records, by position in the response's buffer. */
export interface BatchView {
  buf: Buffer;
  start: number;
  end: number;
  baseOffset: bigint;
  /** The offset after the batch's last record (its records may have been compacted away). */
  nextOffset: bigint;
  producerId: bigint;
  transactional: boolean;
  control: boolean;
}

/** An aborted transaction as a Fetch response lists it (read_committed). */
export interface AbortedTransaction {
  producerId: bigint;
  firstOffset: bigint;
}

/**
 * The complete batches in `records` (a Fetch response's records of one partition). A truncated
 * batch at the end (Kafka cuts at the byte limits) is left out: the next fetch starts at it.
 * `where` names the topic and partition in errors. Verifies each batch's CRC-32C here, before
 * its header (the control bit, the last offset) is trusted: a corrupt control bit must not drop
 * a data batch and move the offset past it.
 */
export function scanBatches(records: Buffer, where: string): BatchView[] {
  const out: BatchView[] = [];
  let pos = 0;
  while (records.length - pos >= HEADER_BYTES) {
    const size = records.readInt32BE(pos + 8);
    const end = pos + LENGTH_END + size;
    if (size < HEADER_BYTES - LENGTH_END)
      throw new DataError(
        `${where}: a record batch at byte ${pos} claims ${size} bytes, less than its header`,
      );
    const magic = records[pos + 16];
    if (magic !== 2)
      throw new DataError(
        `${where}: record batch at offset ${records.readBigInt64BE(pos)} has message format v${magic}; the snapshot applier reads v2 only (Kafka 0.11 or later, log.message.format.version 0.11+)`,
      );
    if (end > records.length) break;
    const stored = records.readUInt32BE(pos + 17);
    const actual = crc32c(records, pos + 21, end);
    if (stored !== actual)
      throw new DataError(
        `${where}: record batch at offset ${records.readBigInt64BE(pos)} fails its CRC-32C check (stored ${stored}, computed ${actual}); the data is corrupt in Kafka or on the way`,
      );
    const attributes = records.readInt16BE(pos + 21);
    const baseOffset = records.readBigInt64BE(pos);
    out.push({
      buf: records,
      start: pos,
      end,
      baseOffset,
      nextOffset: baseOffset + BigInt(records.readInt32BE(pos + 23)) + 1n,
      producerId: records.readBigInt64BE(pos + 43),
      transactional: (attributes & TRANSACTIONAL) !== 0,
      control: (attributes & CONTROL) !== 0,
    });
    pos = end;
  }
  return out;
}

/**
 * The batches whose records a read_committed consumer sees: no control batches, none of a
 * transaction that `aborted` lists (from its first offset to its abort marker). Kafka's own
 * consumer does the same (Fetcher's abortedProducerIds).
 */
export function visibleBatches(batches: BatchView[], aborted: readonly AbortedTransaction[]): BatchView[] {
  if (aborted.length === 0) return batches.filter((b) => !b.control);
  const pending = [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
  const open = new Set<bigint>();
  const out: BatchView[] = [];
  for (const b of batches) {
    while (pending.length && pending[0].firstOffset < b.nextOffset) open.add(pending.shift()!.producerId);
    if (b.control) {
      // An abort marker (control record type 0) ends the producer's aborted transaction.
      if (open.has(b.producerId) && controlType(b) === 0) open.delete(b.producerId);
      continue;
    }
    if (b.transactional && open.has(b.producerId)) continue;
    out.push(b);
  }
  return out;
}

/** The control record type of a control batch: its first record's key is version int16, type int16. */
function controlType(b: BatchView): number {
  const c = { buf: b.buf, pos: b.start + HEADER_BYTES };
  readVarint(c);
  c.pos++;
  skipVarint(c);
  readVarint(c);
  const keyLength = readVarint(c);
  return keyLength >= 4 ? b.buf.readInt16BE(c.pos + 2) : -1;
}

interface Cursor {
  buf: Buffer;
  pos: number;
}

/** A zig-zag varint of at most 5 bytes (int32); one and two bytes (most fields of a record) inline. */
function readVarint(c: Cursor): number {
  const buf = c.buf;
  const pos = c.pos;
  const b0 = buf[pos];
  if (b0 < 0x80) {
    c.pos = pos + 1;
    return (b0 >>> 1) ^ -(b0 & 1);
  }
  const b1 = buf[pos + 1];
  if (b1 < 0x80) {
    const z = (b0 & 0x7f) | (b1 << 7);
    c.pos = pos + 2;
    return (z >>> 1) ^ -(z & 1);
  }
  return readLongVarint(c);
}

function readLongVarint(c: Cursor): number {
  const buf = c.buf;
  let z = 0;
  let shift = 0;
  for (;;) {
    const b = buf[c.pos++];
    z += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
    shift += 7;
    if (shift > 28) throw new RangeError('varint longer than 5 bytes');
  }
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

function skipVarint(c: Cursor): void {
  for (let i = 0; i < 10; i++) if (c.buf[c.pos++] < 0x80) return;
  throw new RangeError('varlong longer than 10 bytes');
}

/**
 * Calls `onRecord` for each record of the batch at or after offset `from`, in order, with its
 * offset and value (a subarray of the response, not a copy, or of the batch's decompressed
 * records; null for a tombstone). Reads uncompressed, lz4 and gzip batches (the CRC-32C was
 * verified by scanBatches); errors name `where` and the offset.
 * Offsets are numbers: exact below 2^53, far beyond any partition's offsets.
 */
export function forEachRecord(
  batch: BatchView,
  from: bigint,
  where: string,
  onRecord: (offset: number, value: Buffer | null) => void,
): void {
  forEachRecordRange(batch, from, where, (offset, buf, start, end) =>
    onRecord(offset, start < 0 ? null : buf.subarray(start, end)),
  );
}

/**
 * forEachRecord without a Buffer per record: the value is buf[start, end) of the response's
 * buffer (of the decompressed records for a compressed batch), start -1 for a tombstone.
 */
export function forEachRecordRange(
  batch: BatchView,
  from: bigint,
  where: string,
  onRecord: (offset: number, buf: Buffer, start: number, end: number) => void,
): void {
  const codec = batch.buf.readInt16BE(batch.start + 21) & COMPRESSION_MASK;
  const { buf, start, end } =
    codec === CODEC_NONE
      ? { buf: batch.buf, start: batch.start + HEADER_BYTES, end: batch.end }
      : decompressRecords(batch, codec, where);
  const base = Number(batch.baseOffset);
  const first = Number(from);
  const count = batch.buf.readInt32BE(batch.start + 57);
  const c: Cursor = { buf, pos: start };
  for (let i = 0; i < count; i++) {
    let offset: number;
    let valueStart: number;
    let valueEnd: number;
    try {
      const length = readVarint(c);
      const next = c.pos + length;
      if (length < 0 || next > end) throw new RangeError(`record ${i} runs past the batch`);
      c.pos++;
      skipVarint(c);
      offset = base + readVarint(c);
      const keyLength = readVarint(c);
      if (keyLength > 0) c.pos += keyLength;
      const valueLength = readVarint(c);
      if (c.pos + Math.max(valueLength, 0) > next) throw new RangeError(`record ${i} runs past its length`);
      valueStart = valueLength < 0 ? -1 : c.pos;
      valueEnd = valueLength < 0 ? -1 : c.pos + valueLength;
      c.pos = next;
    } catch (err) {
      throw new DataError(
        `${where}: malformed record batch at offset ${batch.baseOffset}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    if (offset >= first) onRecord(offset, buf, valueStart, valueEnd);
  }
}

/** The records of a compressed batch, whole: Kafka compresses them as one stream. */
function decompressRecords(
  batch: BatchView,
  codec: number,
  where: string,
): { buf: Buffer; start: number; end: number } {
  const name = CODECS[codec] ?? `codec ${codec}`;
  if (codec !== CODEC_LZ4 && codec !== CODEC_GZIP)
    throw new DataError(
      `${where}: record batch at offset ${batch.baseOffset} is compressed with ${name}, which pgferry does not read (it reads lz4 and gzip): produce this topic with compression.type lz4, gzip or none`,
    );
  try {
    const records =
      codec === CODEC_LZ4
        ? lz4FrameDecompress(batch.buf, batch.start + HEADER_BYTES, batch.end)
        : gunzipSync(batch.buf.subarray(batch.start + HEADER_BYTES, batch.end));
    return { buf: records, start: 0, end: records.length };
  } catch (err) {
    throw new DataError(
      `${where}: record batch at offset ${batch.baseOffset} does not decompress (${name}): ${(err as Error).message}`,
      { cause: err },
    );
  }
}
