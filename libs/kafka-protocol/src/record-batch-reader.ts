import { compareBytes, DataError } from '@pgferry/core';
import {
  BATCH_HEADER_BYTES,
  batchRecords,
  checkBatch,
  InvalidBatchError,
  LOG_OVERHEAD,
  readBatchHeader,
} from './record-batch';
import type { RecordHeader } from './record-batch-writer';
import { readVarint, readVarlong, type Cursor } from './varint';

/**
 * Reads Kafka record batches (layout in record-batch.ts) as a Fetch response or a log segment
 * carries them, without a Message object or a copy per record: keys, values and headers are
 * ranges of the response's buffer (of the decompressed records for a compressed batch).
 */

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
  /**
   * Records at or after this offset are left out by forEachRecordView: a reader bounded at an
   * offset (replay up to a point) hands out the batch that straddles its bound cut there.
   */
  until?: bigint;
}

/** An aborted transaction as a Fetch response lists it (read_committed). */
export interface AbortedTransaction {
  producerId: bigint;
  firstOffset: bigint;
}

/**
 * The complete batches in `records` (a Fetch response's records of one partition). A truncated
 * batch at the end (Kafka cuts at the byte limits) is left out: the next fetch starts at it.
 * `where` names the topic and partition in errors. Checks each batch (checkBatch: magic, length,
 * CRC-32C) before its header is trusted: a corrupt control bit must not drop a data batch and
 * move the offset past it.
 */
export function scanBatches(records: Buffer, where: string): BatchView[] {
  const out: BatchView[] = [];
  let pos = 0;
  while (records.length - pos >= BATCH_HEADER_BYTES) {
    const size = records.readInt32BE(pos + 8) + LOG_OVERHEAD;
    const at = () => `${where}: record batch at offset ${records.readBigInt64BE(pos)}`;
    if (size >= BATCH_HEADER_BYTES && pos + size > records.length && records[pos + 16] === 2) break;
    try {
      checkBatch(records, pos);
    } catch (err) {
      if (!(err instanceof InvalidBatchError)) throw err;
      if (err.code === 'unsupported-magic')
        throw new DataError(
          `${at()} has message format v${records[pos + 16]}; pgferry reads v2 only (Kafka 0.11 or later, log.message.format.version 0.11+)`,
        );
      if (err.message.startsWith('record batch CRC mismatch'))
        throw new DataError(
          `${at()} fails its CRC-32C check (${err.message.slice(err.message.indexOf('(') + 1, -1)}); the data is corrupt in Kafka or on the way`,
        );
      throw new DataError(`${at()}: ${err.message}`);
    }
    const h = readBatchHeader(records, pos);
    out.push({
      buf: records,
      start: pos,
      end: pos + size,
      baseOffset: h.baseOffset,
      nextOffset: h.baseOffset + BigInt(h.lastOffsetDelta) + 1n,
      producerId: h.producerId,
      transactional: h.isTransactional,
      control: h.isControl,
    });
    pos += size;
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
  let type = -1;
  forEachRecordView(b, 0n, 'control batch', (r) => {
    if (type === -1 && r.keyEnd - r.keyStart >= 4) type = r.buf.readInt16BE(r.keyStart + 2);
  });
  return type;
}

/**
 * One record as forEachRecordView hands it out: a view reused for every record of the call, so
 * copy what must outlive the callback. Key and value are buf[start, end), start -1 for null.
 */
export interface RecordView {
  buf: Buffer;
  offset: number;
  timestampDelta: bigint;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  /** Where the header count varint starts (headers are parsed only when asked, see recordHeaders). */
  headersAt: number;
}

/**
 * The headers of a record view, as objects (values are views of the batch). Malformed headers
 * are a DataError naming the record's offset; the caller adds the topic and partition.
 */
export function recordHeaders(r: RecordView): RecordHeader[] {
  const c: Cursor = { buf: r.buf, pos: r.headersAt };
  const out: RecordHeader[] = [];
  try {
    const n = readVarint(c);
    for (let i = 0; i < n; i++) {
      const kl = readVarint(c);
      const key = r.buf.toString('utf8', c.pos, c.pos + kl);
      c.pos += kl;
      const vl = readVarint(c);
      out.push({ key, value: vl < 0 ? null : r.buf.subarray(c.pos, c.pos + vl) });
      c.pos += Math.max(vl, 0);
    }
  } catch (err) {
    throw malformedHeaders(r, err);
  }
  return out;
}

/** Header names recordHeader was asked for, as bytes. */
const headerKeys = new Map<string, Buffer>();

/**
 * The value of a record's first header named `key` (a view), or null when it has none.
 * Malformed headers are a DataError naming the record's offset, as in recordHeaders.
 */
export function recordHeader(r: RecordView, key: string): Buffer | null {
  const start = findHeader(r, key);
  if (start < 0 || foundLength < 0) return null;
  return r.buf.subarray(start, start + foundLength);
}

/**
 * Where the value of a record's first header named `key` starts in `r.buf` when it is exactly
 * `length` bytes long, else -1 (no such header, a null value, another length): recordHeader
 * without a view per record, for the appliers' hot path. Malformed headers as in recordHeaders.
 */
export function recordHeaderAt(r: RecordView, key: string, length: number): number {
  const start = findHeader(r, key);
  return start >= 0 && foundLength === length ? start : -1;
}

/** The value length (-1: null) of the header findHeader found last: no object per call. */
let foundLength = -1;

/** Where the value of the first header named `key` starts (its length in foundLength), or -1. */
function findHeader(r: RecordView, key: string): number {
  const c: Cursor = { buf: r.buf, pos: r.headersAt };
  let want = headerKeys.get(key);
  if (!want) headerKeys.set(key, (want = Buffer.from(key)));
  try {
    const n = readVarint(c);
    for (let i = 0; i < n; i++) {
      const kl = readVarint(c);
      // Compared as bytes: no string per record and header (the appliers ask this of every record).
      const match = kl === want.length && compareBytes(r.buf, c.pos, want, 0, kl) === 0;
      c.pos += kl;
      const vl = readVarint(c);
      if (match) {
        foundLength = vl;
        return c.pos;
      }
      c.pos += Math.max(vl, 0);
    }
  } catch (err) {
    throw malformedHeaders(r, err);
  }
  return -1;
}

function malformedHeaders(r: RecordView, err: unknown): DataError {
  return new DataError(
    `record at offset ${r.offset} has malformed headers (${(err as Error).message}); it was written by a broken producer`,
    { cause: err },
  );
}

/**
 * Calls `onRecord` for each record of the batch at or after offset `from`, in order. Reads
 * uncompressed, lz4 and gzip batches (the CRC-32C was verified by scanBatches or checkBatch);
 * errors name `where` and the batch's offset. Offsets are numbers: exact below 2^53, far beyond
 * any partition's offsets.
 */
export function forEachRecordView(
  batch: Pick<BatchView, 'buf' | 'start' | 'end' | 'baseOffset' | 'until'>,
  from: bigint,
  where: string,
  onRecord: (record: RecordView) => void,
): void {
  let records: { buf: Buffer; start: number; end: number };
  try {
    records = batchRecords(batch.buf, batch.start, batch.end);
  } catch (err) {
    if (!(err instanceof InvalidBatchError)) throw err;
    throw new DataError(`${where}: record batch at offset ${batch.baseOffset} ${err.message}`);
  }
  const { buf, end } = records;
  const base = Number(batch.baseOffset);
  const first = Number(from);
  const until = batch.until === undefined ? Infinity : Number(batch.until);
  const count = batch.buf.readInt32BE(batch.start + 57);
  const c: Cursor = { buf, pos: records.start };
  const view: RecordView = {
    buf,
    offset: 0,
    timestampDelta: 0n,
    keyStart: -1,
    keyEnd: -1,
    valueStart: -1,
    valueEnd: -1,
    headersAt: 0,
  };
  for (let i = 0; i < count; i++) {
    try {
      const length = readVarint(c);
      const next = c.pos + length;
      if (length < 0 || next > end) throw new DataError(`record ${i} runs past the batch`);
      c.pos++;
      view.timestampDelta = buf[c.pos] === 0 ? (c.pos++, 0n) : readVarlong(c);
      view.offset = base + readVarint(c);
      const keyLength = readVarint(c);
      view.keyStart = keyLength < 0 ? -1 : c.pos;
      view.keyEnd = keyLength < 0 ? -1 : c.pos + keyLength;
      if (keyLength > 0) c.pos += keyLength;
      const valueLength = readVarint(c);
      if (c.pos + Math.max(valueLength, 0) > next) throw new DataError(`record ${i} runs past its length`);
      view.valueStart = valueLength < 0 ? -1 : c.pos;
      view.valueEnd = valueLength < 0 ? -1 : c.pos + valueLength;
      view.headersAt = c.pos + Math.max(valueLength, 0);
      c.pos = next;
    } catch (err) {
      throw new DataError(
        `${where}: malformed record batch at offset ${batch.baseOffset}: ${(err as Error).message}; the producer that wrote it is broken`,
        { cause: err },
      );
    }
    if (view.offset >= until) return;
    if (view.offset >= first) onRecord(view);
  }
}

/**
 * forEachRecordView for the value alone: buf[start, end) of the response's buffer (of the
 * decompressed records for a compressed batch), start -1 for a tombstone.
 */
export function forEachRecordRange(
  batch: BatchView,
  from: bigint,
  where: string,
  onRecord: (offset: number, buf: Buffer, start: number, end: number) => void,
): void {
  forEachRecordView(batch, from, where, (r) => onRecord(r.offset, r.buf, r.valueStart, r.valueEnd));
}

/** forEachRecordRange with the value as a Buffer view (null for a tombstone). */
export function forEachRecord(
  batch: BatchView,
  from: bigint,
  where: string,
  onRecord: (offset: number, value: Buffer | null) => void,
): void {
  forEachRecordView(batch, from, where, (r) =>
    onRecord(r.offset, r.valueStart < 0 ? null : r.buf.subarray(r.valueStart, r.valueEnd)),
  );
}

/** A record as an object, with its headers: for the broker's own reads and tests. */
export interface KafkaRecord {
  offset: bigint;
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/**
 * The records of the batch at `pos` of `buf`, as objects (keys, values and headers are views).
 * Throws InvalidBatchError for a codec it cannot read. Does not check the CRC.
 */
export function decodeRecords(buf: Buffer, pos = 0): KafkaRecord[] {
  const h = readBatchHeader(buf, pos);
  const out: KafkaRecord[] = [];
  try {
    forEachRecordView({ buf, start: pos, end: pos + h.size, baseOffset: h.baseOffset }, 0n, 'batch', (r) =>
      out.push({
        offset: BigInt(r.offset),
        timestamp: h.firstTimestamp + r.timestampDelta,
        key: r.keyStart < 0 ? null : r.buf.subarray(r.keyStart, r.keyEnd),
        value: r.valueStart < 0 ? null : r.buf.subarray(r.valueStart, r.valueEnd),
        headers: r.buf[r.headersAt] === 0 ? [] : recordHeaders(r),
      }),
    );
  } catch (err) {
    throw new InvalidBatchError((err as Error).message, 'corrupt');
  }
  return out;
}
