import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
  fdatasync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, readBatchHeader, type BatchHeader } from '@pgferry/kafka-protocol';
import { crc32c, PRIVATE_FILE_MODE } from '@pgferry/core';
import type { ReadArena } from './read-arena';

const fdatasyncP = promisify(fdatasync);

/**
 * A log write or fsync that failed. `recoverable`: nothing of it counts and the files are as they
 * were before it (a full disk, say), so the next write may succeed; otherwise what is on disk is
 * unknown and the partition must not take writes until the broker restarts and recovers it.
 */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly recoverable: boolean,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/** writeSync until every byte is written: a write may take fewer bytes than it was given. */
function writeFully(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = writeSync(fd, buf, done, buf.length - done, position + done);
    if (n <= 0) throw new Error(`write returned ${n} after ${done} of ${buf.length} bytes`);
    done += n;
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
}

/** One stored batch: where it is and what it covers. */
export interface BatchEntry {
  base: bigint;
  last: bigint;
  pos: number;
  size: number;
  maxTs: bigint;
}

/**
 * Index file: one 24-byte entry per batch, in log order:
 *   relativeBase int32 | lastOffsetDelta int32 | position int32 | size int32 | maxTimestamp int64
 * It is written after the batch, so after a crash it can only be behind the log (or, without
 * fsync ordering, point past it); recovery drops entries that do not match the log and re-scans
 * the log from the last good entry, checking CRCs, truncating a torn tail.
 */
const INDEX_ENTRY = 24;

export function segmentName(base: bigint): string {
  return base.toString().padStart(20, '0');
}

export interface RecoveryReport {
  truncatedBytes: number;
  rebuiltEntries: number;
}

export class Segment {
  readonly entries: BatchEntry[] = [];
  size = 0;
  private logFd: number;
  private indexFd: number;
  dirty = false;
  createdAt = Date.now();

  private constructor(
    readonly dir: string,
    readonly base: bigint,
  ) {
    this.logFd = openSync(this.logPath, existsSync(this.logPath) ? 'r+' : 'w+', PRIVATE_FILE_MODE);
    this.indexFd = openSync(this.indexPath, existsSync(this.indexPath) ? 'r+' : 'w+', PRIVATE_FILE_MODE);
  }

  get logPath(): string {
    return join(this.dir, `${segmentName(this.base)}.log`);
  }
  get indexPath(): string {
    return join(this.dir, `${segmentName(this.base)}.index`);
  }
  /** The offset after the last batch, or the base when empty. */
  get nextOffset(): bigint {
    return this.entries.length ? this.entries[this.entries.length - 1].last + 1n : this.base;
  }
  get maxTimestamp(): bigint {
    let m = -1n;
    for (const e of this.entries) if (e.maxTs > m) m = e.maxTs;
    return m;
  }

  static create(dir: string, base: bigint): Segment {
    return new Segment(dir, base);
  }

  /**
   * Opens an existing segment and recovers it: trusts index entries that match the log, then
   * scans the rest of the log batch by batch (CRC checked) and truncates at the first bad byte.
   * `onBatch` sees every batch header that was re-scanned (producer state rebuild).
   */
  static open(
    dir: string,
    base: bigint,
    onBatch?: (h: BatchHeader, e: BatchEntry) => void,
  ): { segment: Segment; report: RecoveryReport } {
    const seg = new Segment(dir, base);
    const logSize = fstatSync(seg.logFd).size;
    const indexSize = fstatSync(seg.indexFd).size;
    const idx = Buffer.alloc(indexSize - (indexSize % INDEX_ENTRY));
    if (idx.length) readSync(seg.indexFd, idx, 0, idx.length, 0);
    let pos = 0;
    for (let i = 0; i + INDEX_ENTRY <= idx.length; i += INDEX_ENTRY) {
      const e: BatchEntry = {
        base: base + BigInt(idx.readInt32BE(i)),
        last: base + BigInt(idx.readInt32BE(i)) + BigInt(idx.readInt32BE(i + 4)),
        pos: idx.readInt32BE(i + 8),
        size: idx.readInt32BE(i + 12),
        maxTs: idx.readBigInt64BE(i + 16),
      };
      if (e.pos !== pos || e.pos + e.size > logSize || e.size < BATCH_HEADER_BYTES || e.last < e.base) break;
      seg.entries.push(e);
      pos += e.size;
    }
    // The last trusted entry is re-verified by CRC: an index can run ahead of an unsynced log.
    if (seg.entries.length) {
      const lastEntry = seg.entries[seg.entries.length - 1];
      if (!seg.verify(lastEntry)) {
        seg.entries.pop();
        pos = lastEntry.pos;
      }
    }
    const trusted = seg.entries.length;
    const header = Buffer.alloc(BATCH_HEADER_BYTES);
    while (pos + BATCH_HEADER_BYTES <= logSize) {
      readSync(seg.logFd, header, 0, BATCH_HEADER_BYTES, pos);
      const h = readBatchHeader(header);
      if (
        h.magic !== 2 ||
        h.size < BATCH_HEADER_BYTES ||
        pos + h.size > logSize ||
        h.baseOffset < seg.nextOffset
      )
        break;
      const e: BatchEntry = {
        base: h.baseOffset,
        last: h.baseOffset + BigInt(h.lastOffsetDelta),
        pos,
        size: h.size,
        maxTs: h.maxTimestamp,
      };
      if (!seg.verify(e)) break;
      seg.entries.push(e);
      onBatch?.(h, e);
      pos += h.size;
    }
    const truncatedBytes = logSize - pos;
    if (truncatedBytes > 0) ftruncateSync(seg.logFd, pos);
    seg.size = pos;
    const rebuilt = seg.entries.length - trusted;
    if (rebuilt > 0 || idx.length !== seg.entries.length * INDEX_ENTRY || indexSize % INDEX_ENTRY !== 0)
      seg.rewriteIndex();
    return { segment: seg, report: { truncatedBytes, rebuiltEntries: rebuilt } };
  }

  private verify(e: BatchEntry): boolean {
    const buf = Buffer.allocUnsafe(e.size);
    readSync(this.logFd, buf, 0, e.size, e.pos);
    if (buf.readInt8(16) !== 2 || buf.readInt32BE(8) + LOG_OVERHEAD !== e.size) return false;
    return crc32c(buf, 21, e.size) === buf.readUInt32BE(17);
  }

  private indexEntry(e: BatchEntry): Buffer {
    const b = Buffer.allocUnsafe(INDEX_ENTRY);
    b.writeInt32BE(Number(e.base - this.base), 0);
    b.writeInt32BE(Number(e.last - e.base), 4);
    b.writeInt32BE(e.pos, 8);
    b.writeInt32BE(e.size, 12);
    b.writeBigInt64BE(e.maxTs, 16);
    return b;
  }

  private rewriteIndex(): void {
    ftruncateSync(this.indexFd, 0);
    if (this.entries.length) {
      const all = Buffer.concat(this.entries.map((e) => this.indexEntry(e)));
      writeSync(this.indexFd, all, 0, all.length, 0);
    }
  }

  /**
   * Appends a batch whose baseOffset is already assigned. Written to the OS before returning.
   * A failed write (ENOSPC, EIO) throws StorageError after cutting the log and the index back to
   * the last whole batch, so a batch that was not acknowledged leaves nothing behind; when that
   * cut fails too the error is not recoverable.
   */
  append(batch: Buffer, h: BatchHeader): BatchEntry {
    const e: BatchEntry = {
      base: h.baseOffset,
      last: h.baseOffset + BigInt(h.lastOffsetDelta),
      pos: this.size,
      size: batch.length,
      maxTs: h.maxTimestamp,
    };
    try {
      writeFully(this.logFd, batch, this.size);
      writeFully(this.indexFd, this.indexEntry(e), this.entries.length * INDEX_ENTRY);
    } catch (err) {
      try {
        ftruncateSync(this.logFd, this.size);
        ftruncateSync(this.indexFd, this.entries.length * INDEX_ENTRY);
      } catch (cut) {
        throw new StorageError(
          `writing ${this.logPath} failed (${reason(err)}) and cutting it back failed (${reason(cut)})`,
          false,
        );
      }
      throw new StorageError(`writing ${this.logPath} failed (${reason(err)})`, true);
    }
    this.entries.push(e);
    this.size += batch.length;
    this.dirty = true;
    return e;
  }

  /** Index of the first batch whose last offset is >= offset, or entries.length. */
  findBatch(offset: bigint): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.entries[mid].last < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Whole batches from entry `from`, at most `maxBytes` (but at least one when `atLeastOne`),
   * read into `arena` when given.
   */
  read(from: number, maxBytes: number, atLeastOne: boolean, arena?: ReadArena): Buffer {
    if (from >= this.entries.length) return Buffer.alloc(0);
    const start = this.entries[from].pos;
    let end = start;
    for (let i = from; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.pos + e.size - start > maxBytes && !(atLeastOne && i === from)) break;
      end = e.pos + e.size;
    }
    return this.readRange(start, end - start, arena);
  }

  readRange(pos: number, length: number, arena?: ReadArena): Buffer {
    const buf = arena ? arena.take(length) : Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.logFd, buf, done, length - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  /**
   * fsyncs the log. The index is not: recovery (`open`) trusts only index entries that match the
   * log and re-scans the rest of the log, CRC checked, so an index that lags behind the log after
   * a crash costs a scan at startup, never a batch; one fsync per segment written instead of two
   * halves the broker's fsyncs per produce request. A failed fsync is never recoverable: the
   * kernel may have dropped the dirty pages it could not write and a second fsync would then
   * succeed (PostgreSQL's "fsyncgate"), so what is on disk is unknown until recovery reads it back.
   */
  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await fdatasyncP(this.logFd);
    } catch (err) {
      throw new StorageError(`fsync of ${this.logPath} failed (${reason(err)})`, false);
    }
  }

  close(): void {
    closeSync(this.logFd);
    closeSync(this.indexFd);
  }

  delete(): void {
    this.close();
    for (const p of [this.logPath, this.indexPath]) if (existsSync(p)) unlinkSync(p);
  }
}
