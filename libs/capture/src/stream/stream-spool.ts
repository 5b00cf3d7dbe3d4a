import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lsn } from '@pgferry/pg';

/**
 * Holds the messages of in-progress streamed transactions (pgoutput protocol 2) until their
 * Stream Commit, so that an aborted transaction produces nothing and a committed one is replayed
 * whole and in order. Memory is bounded: all open transactions share `memoryLimitBytes`; when
 * the total passes it, the transaction that pushed it over moves its buffered messages to its
 * own temporary file, so a transaction of any size costs at most the limit in memory.
 *
 * Record layout in memory and on disk: LSN (8 bytes), length (4 bytes), pgoutput message.
 */
export interface SpoolOptions {
  /** Total bytes of buffered messages kept in memory across all open transactions. */
  memoryLimitBytes: number;
  /** Parent folder for spill files (default: the OS temp folder). */
  dir?: string;
}

export interface SpooledMessage {
  lsn: Lsn;
  data: Buffer;
}

const HEADER = 12;
const READ_CHUNK = 1 << 20;

export class SpoolArea {
  used = 0;
  private folder: Promise<string> | null = null;

  constructor(readonly options: SpoolOptions) {}

  /** A private folder for this reader's spill files, made on first use. */
  spillFolder(): Promise<string> {
    this.folder ??= mkdtemp(join(this.options.dir ?? tmpdir(), 'pgferry-cdc-'));
    return this.folder;
  }

  /** Removes the spill folder. Idempotent. */
  async close(): Promise<void> {
    const folder = this.folder;
    this.folder = null;
    if (folder) await rm(await folder, { recursive: true, force: true });
  }
}

/** The buffered messages of one top-level transaction. */
export class TransactionSpool {
  private mem: Array<{ offset: number; lsn: Lsn; data: Buffer }> = [];
  private memBytes = 0;
  private fileBytes = 0;
  private file: FileHandle | null = null;
  private path: string | null = null;
  /** Where each subtransaction's first message starts, to cut it out if it aborts. */
  private readonly subxactStart = new Map<number, number>();

  constructor(
    readonly xid: number,
    private readonly area: SpoolArea,
  ) {}

  get spilled(): boolean {
    return this.file !== null;
  }

  private get end(): number {
    return this.fileBytes + this.memBytes;
  }

  /**
   * Appends one message of (sub)transaction `subxid`; `data` must not be a view the caller
   * reuses. Returns a promise only when the append moved the buffered messages to the spill
   * file: a large transaction's messages are appended by the million, and a promise each (and
   * the await of each) was a tenth of the capture's time while it streamed.
   */
  append(subxid: number, lsn: Lsn, data: Buffer): Promise<void> | undefined {
    if (subxid !== this.xid && !this.subxactStart.has(subxid)) this.subxactStart.set(subxid, this.end);
    const size = HEADER + data.length;
    this.mem.push({ offset: this.end, lsn, data });
    this.memBytes += size;
    this.area.used += size;
    return this.area.used > this.area.options.memoryLimitBytes ? this.spill() : undefined;
  }

  private async spill(): Promise<void> {
    if (this.mem.length === 0) return;
    if (!this.file) {
      this.path = join(await this.area.spillFolder(), `xid-${this.xid}.spool`);
      this.file = await open(this.path, 'w+', 0o600);
    }
    const out = Buffer.allocUnsafe(this.memBytes);
    let at = 0;
    for (const m of this.mem) {
      out.writeBigUInt64BE(m.lsn, at);
      out.writeUInt32BE(m.data.length, at + 8);
      m.data.copy(out, at + HEADER);
      at += HEADER + m.data.length;
    }
    await this.file.write(out, 0, out.length, this.fileBytes);
    this.fileBytes += out.length;
    this.area.used -= this.memBytes;
    this.memBytes = 0;
    this.mem = [];
  }

  /**
   * Drops everything subtransaction `subxid` (and so every subtransaction nested in it, which
   * can only have written after it started) added. A subxid that wrote nothing is a no-op.
   */
  async abortSubtransaction(subxid: number): Promise<void> {
    const from = this.subxactStart.get(subxid);
    if (from === undefined) return;
    for (const [x, off] of this.subxactStart) if (off >= from) this.subxactStart.delete(x);
    if (from >= this.fileBytes) {
      const keep = this.mem.findIndex((m) => m.offset >= from);
      if (keep >= 0) {
        const dropped = this.mem.splice(keep);
        const bytes = dropped.reduce((n, m) => n + HEADER + m.data.length, 0);
        this.memBytes -= bytes;
        this.area.used -= bytes;
      }
      return;
    }
    await this.file!.truncate(from);
    this.fileBytes = from;
    this.area.used -= this.memBytes;
    this.memBytes = 0;
    this.mem = [];
  }

  private async *readFile(): AsyncGenerator<SpooledMessage[]> {
    if (!this.file) return;
    let pos = 0;
    let carry = Buffer.alloc(0);
    while (pos < this.fileBytes) {
      const want = Math.min(READ_CHUNK, this.fileBytes - pos);
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.file.read(chunk, 0, want, pos);
      if (bytesRead === 0)
        throw new Error(`spool file ${this.path} ended at ${pos} of ${this.fileBytes} bytes`);
      pos += bytesRead;
      carry = carry.length
        ? Buffer.concat([carry, chunk.subarray(0, bytesRead)])
        : chunk.subarray(0, bytesRead);
      let at = 0;
      const messages: SpooledMessage[] = [];
      while (carry.length - at >= HEADER) {
        const len = carry.readUInt32BE(at + 8);
        if (carry.length - at < HEADER + len) break;
        messages.push({
          lsn: carry.readBigUInt64BE(at),
          data: carry.subarray(at + HEADER, at + HEADER + len),
        });
        at += HEADER + len;
      }
      if (messages.length) yield messages;
      carry = carry.subarray(at);
    }
    if (carry.length) throw new Error(`spool file ${this.path} ends inside a record`);
  }

  /**
   * Every message in order, the spilled ones from the file then those still in memory, in
   * batches (one per read of the file): a promise per batch, not per message.
   */
  async *replay(): AsyncGenerator<SpooledMessage[]> {
    yield* this.readFile();
    if (this.mem.length) yield this.mem.map((m) => ({ lsn: m.lsn, data: m.data }));
  }

  /** Releases memory and deletes the spill file. Idempotent. */
  async discard(): Promise<void> {
    this.area.used -= this.memBytes;
    this.memBytes = 0;
    this.mem = [];
    const file = this.file;
    this.file = null;
    if (file) {
      await file.close().catch(() => undefined);
      await rm(this.path!, { force: true });
    }
  }
}
