import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '@pgferry/core';
import { BATCH_HEADER_BYTES, readBatchHeader, type BatchHeader } from '@pgferry/kafka-protocol';
import type { ReadArena } from './read-arena';
import { ProducerState, type SequenceCheck } from './producer-state';
import { Segment, StorageError, type RecoveryReport } from './segment';
import type { TopicConfig } from './topic-config';

export interface AppendResult {
  /** Offset of the first record of the first batch, or of the duplicate's original. */
  baseOffset: bigint;
  error?: { kind: 'out-of-order' | 'fenced' | 'storage'; message: string };
}

/**
 * One partition's log: segments named by base offset, the active one last. Appends are written
 * to the OS before `append` returns (so a killed process loses nothing acknowledged); `flush()`
 * fsyncs for the every-batch policy and the interval flusher. Not safe for concurrent callers
 * from several threads; the broker calls it from its single event loop.
 */
export class PartitionLog {
  private segments: Segment[] = [];
  private producers = new ProducerState();
  private waiters = new Set<() => void>();
  logStartOffset = 0n;
  /**
   * Why the partition takes no writes and serves no reads, after a storage error that left its
   * files in an unknown state (a failed fsync, a write that could not be cut back); null while
   * healthy. Only a restart clears it: recovery then reads the log back, checking every CRC.
   */
  offline: string | null = null;
  recovery: RecoveryReport = { truncatedBytes: 0, rebuiltEntries: 0 };

  constructor(
    readonly dir: string,
    public config: TopicConfig,
  ) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    this.open();
  }

  get highWatermark(): bigint {
    return this.active.nextOffset;
  }
  private get active(): Segment {
    return this.segments[this.segments.length - 1];
  }
  get sizeBytes(): number {
    return this.segments.reduce((a, s) => a + s.size, 0);
  }

  private open(): void {
    const bases = readdirSync(this.dir)
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => BigInt(f.slice(0, 20)))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const lsoPath = join(this.dir, 'log-start-offset');
    if (existsSync(lsoPath)) this.logStartOffset = BigInt(readFileSync(lsoPath, 'utf8').trim() || '0');
    const snapshotFrom = this.producers.load(join(this.dir, 'producers.json'));
    for (const base of bases) {
      const { segment, report } = Segment.open(this.dir, base);
      this.recovery.truncatedBytes += report.truncatedBytes;
      this.recovery.rebuiltEntries += report.rebuiltEntries;
      this.segments.push(segment);
    }
    if (this.segments.length === 0) this.segments.push(Segment.create(this.dir, this.logStartOffset));
    // Producer state after the snapshot comes from the batch headers themselves.
    const header = Buffer.alloc(BATCH_HEADER_BYTES);
    for (const seg of this.segments) {
      if (seg.nextOffset <= snapshotFrom) continue;
      for (const e of seg.entries) {
        if (e.base < snapshotFrom) continue;
        header.set(seg.readRange(e.pos, BATCH_HEADER_BYTES));
        const h = readBatchHeader(header);
        if (h.producerId >= 0n)
          this.producers.record(
            h.producerId,
            h.producerEpoch,
            h.baseSequence,
            h.baseSequence + h.recordCount - 1,
            e.base,
          );
      }
    }
    if (this.logStartOffset < this.segments[0].base) this.logStartOffset = this.segments[0].base;
    if (this.logStartOffset > this.highWatermark) this.logStartOffset = this.highWatermark;
  }

  /** Checks idempotence, assigns offsets (rewriting bytes 0..7), writes. The batch buffer is mutated. */
  append(batch: Buffer, h: BatchHeader, now = Date.now()): AppendResult {
    if (this.offline) return { baseOffset: -1n, error: { kind: 'storage', message: this.offline } };
    const lastSeq = h.baseSequence + h.recordCount - 1;
    const check: SequenceCheck = this.producers.check(h.producerId, h.producerEpoch, h.baseSequence, lastSeq);
    if (check.kind === 'duplicate') return { baseOffset: check.baseOffset };
    if (check.kind === 'out-of-order' || check.kind === 'fenced')
      return { baseOffset: -1n, error: { kind: check.kind, message: check.message } };
    const base = this.highWatermark;
    batch.writeBigInt64BE(base, 0);
    try {
      if (
        this.active.size > 0 &&
        (this.active.size + batch.length > this.config.segmentBytes ||
          now - this.active.createdAt > this.config.segmentMs)
      )
        this.roll();
      this.active.append(batch, { ...h, baseOffset: base });
    } catch (err) {
      return { baseOffset: -1n, error: { kind: 'storage', message: this.failed(err) } };
    }
    this.producers.record(h.producerId, h.producerEpoch, h.baseSequence, lastSeq, base);
    for (const w of [...this.waiters]) w();
    return { baseOffset: base };
  }

  private roll(): void {
    const next = Segment.create(this.dir, this.highWatermark);
    try {
      this.producers.save(join(this.dir, 'producers.json'), next.base);
    } catch (err) {
      next.delete();
      throw new StorageError(
        `saving the producer state of ${this.dir} failed (${(err as Error).message})`,
        true,
      );
    }
    this.segments.push(next);
  }

  /**
   * The message for a failed write; a storage error that is not recoverable (or an unexpected
   * one) takes the partition offline.
   */
  private failed(err: unknown): string {
    const recoverable = err instanceof StorageError && err.recoverable;
    const message = (err as Error).message;
    if (recoverable)
      return /ENOSPC/.test(message)
        ? `${message}: the disk of ${this.dir} is full; free space there (nothing of this batch was kept, the producer retries it)`
        : `${message} (nothing of this batch was kept, the producer retries it)`;
    this.offline = `partition log ${this.dir} is offline after a storage error: ${message}; restart the broker once the disk is healthy (it recovers the log, checking every batch's CRC)`;
    for (const w of [...this.waiters]) w();
    return this.offline;
  }

  /**
   * Whole batches starting with the one that holds `offset`, from one segment, at most
   * `maxBytes` unless the first batch alone is larger (then it is returned whole, as Kafka does
   * so that a consumer can always make progress). Read into `arena` when given.
   */
  read(offset: bigint, maxBytes: number, atLeastOne = true, arena?: ReadArena): Buffer {
    for (let i = this.segmentIndexFor(offset); i < this.segments.length; i++) {
      const seg = this.segments[i];
      const idx = seg.findBatch(offset);
      if (idx < seg.entries.length) return seg.read(idx, maxBytes, atLeastOne, arena);
    }
    return Buffer.alloc(0);
  }

  private segmentIndexFor(offset: bigint): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.segments[mid].base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The first batch whose max timestamp is >= ts: its base offset (or the high watermark). */
  offsetForTimestamp(ts: bigint): { offset: bigint; timestamp: bigint } {
    for (const seg of this.segments) {
      for (const e of seg.entries) {
        if (e.last < this.logStartOffset) continue;
        if (e.maxTs >= ts)
          return { offset: e.base < this.logStartOffset ? this.logStartOffset : e.base, timestamp: e.maxTs };
      }
    }
    return { offset: -1n, timestamp: -1n };
  }

  /** Resolves when data beyond `offset` arrives, or after `ms`. */
  waitForData(offset: bigint, ms: number): Promise<void> {
    if (this.highWatermark > offset || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** Makes records below `offset` unreadable; deletes whole segments below it. */
  deleteRecordsBefore(offset: bigint): bigint {
    if (offset > this.logStartOffset) {
      this.logStartOffset = offset;
      this.saveLogStart();
      this.dropSegmentsBelow(offset);
    }
    return this.logStartOffset;
  }

  private saveLogStart(): void {
    const p = join(this.dir, 'log-start-offset');
    writeFileSync(`${p}.tmp`, this.logStartOffset.toString(), { mode: PRIVATE_FILE_MODE });
    renameSync(`${p}.tmp`, p);
  }

  private dropSegmentsBelow(offset: bigint): void {
    while (this.segments.length > 1 && this.segments[1].base <= offset) this.segments.shift()!.delete();
  }

  /** retention.ms and retention.bytes: deletes whole closed segments, never the active one. */
  applyRetention(now = Date.now()): number {
    if (!this.config.cleanupPolicy.includes('delete')) return 0;
    let removed = 0;
    const { retentionMs, retentionBytes } = this.config;
    while (this.segments.length > 1) {
      const oldest = this.segments[0];
      const tooOld =
        retentionMs >= 0 && oldest.maxTimestamp >= 0n && Number(oldest.maxTimestamp) < now - retentionMs;
      const tooBig =
        retentionBytes >= 0 &&
        this.sizeBytes - oldest.size >= retentionBytes &&
        this.sizeBytes > retentionBytes;
      if (!tooOld && !tooBig) break;
      this.segments.shift()!.delete();
      removed++;
      if (this.logStartOffset < this.segments[0].base) {
        this.logStartOffset = this.segments[0].base;
        this.saveLogStart();
      }
    }
    return removed;
  }

  /** Closed segments (for compaction); the active one is never rewritten. */
  closedSegments(): Segment[] {
    return this.segments.slice(0, -1);
  }

  /** Replaces closed segments in place with compacted copies (same base offsets). */
  replaceSegment(old: Segment, replacement: { batches: Buffer[] }): void {
    const idx = this.segments.indexOf(old);
    if (idx < 0 || idx === this.segments.length - 1) return;
    const tmpDir = join(this.dir, 'cleaning');
    rmSync(tmpDir, { recursive: true, force: true });
    mkdirSync(tmpDir, { mode: PRIVATE_DIR_MODE });
    const fresh = Segment.create(tmpDir, old.base);
    for (const b of replacement.batches) fresh.append(b, readBatchHeader(b));
    fresh.close();
    old.close();
    renameSync(fresh.logPath, old.logPath);
    renameSync(fresh.indexPath, old.indexPath);
    rmSync(tmpDir, { recursive: true, force: true });
    this.segments[idx] = Segment.open(this.dir, old.base).segment;
  }

  allSegments(): Segment[] {
    return [...this.segments];
  }

  /** fsyncs every segment; a failure takes the partition offline and rejects with its reason. */
  async flush(): Promise<void> {
    try {
      await Promise.all(this.segments.map((s) => s.flush()));
    } catch (err) {
      throw new StorageError(this.failed(err), false);
    }
  }

  close(): void {
    try {
      this.producers.save(join(this.dir, 'producers.json'), this.highWatermark);
    } catch {
      // The older snapshot stays; open() rebuilds the producer state after it from the batches.
    }
    for (const s of this.segments) s.close();
    for (const w of [...this.waiters]) w();
  }

  destroy(): void {
    for (const s of this.segments) s.close();
    for (const w of [...this.waiters]) w();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
