import { isUtf8 } from 'node:buffer';
import type { Connection } from 'pg';
import { CopyRowBatch } from '../copy/copy-rows';

/*
 * Backend messages of the COPY OUT sub-protocol (PostgreSQL protocol 3, "COPY Operations"): each
 * is a code byte and an int32 length that counts itself and the body. In text format every
 * CopyData message is one whole row with its newline.
 */
const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const COPY_OUT_RESPONSE = 0x48; // 'H'
const ERROR_RESPONSE = 0x45; // 'E'
/** Messages the server may send in the middle of a COPY (protocol-flow: asynchronous operations). */
const NOTICE_RESPONSE = 0x4e; // 'N'
const PARAMETER_STATUS = 0x53; // 'S'
const NOTIFICATION_RESPONSE = 0x41; // 'A'
const HEADER = 5;

/** pg's socket, in the calls this reader makes (a net.Socket or a TLS socket). */
interface Socket {
  listeners(event: 'data'): Array<(chunk: Buffer) => void>;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  on(event: string, listener: (...args: never[]) => void): unknown;
  pause(): unknown;
  resume(): unknown;
  read(): Buffer | null;
  destroy(): unknown;
}

/**
 * `COPY ... TO STDOUT` (text format) as a pg Submittable that hands out rows in batches of
 * byte ranges of the network reads: no Buffer per row and no copy of the data (unlike
 * pg-copy-streams, which cuts a Buffer per message and copies every read into a new one).
 *
 * Like pg-copy-streams it takes the connection's socket over from pg's parser from the query
 * until CopyDone, then gives pg the bytes after it (CommandComplete, ReadyForQuery), or hands
 * an ErrorResponse to pg, which reports it through handleError.
 *
 * Each read is checked for UTF-8 once: the 5 header bytes of its CopyData messages, already
 * parsed, are overwritten with newlines (the reads belong to this reader alone), so the span of
 * whole rows is valid UTF-8 exactly when each row is (a row ends with a newline, which is never
 * part of a multi-byte sequence). A batch with a row that is not has `utf8` false.
 *
 * Back-pressure: the socket is not read while `onBatch` runs, so memory stays bounded by about
 * one batch. If `onBatch` rejects, the rest of the COPY is read and dropped (so the connection
 * stays usable) and `done` rejects with that error.
 */
export class CopyOutQuery {
  /** Settles when the server has finished the COPY (ReadyForQuery) or failed it. */
  readonly done: Promise<{ rows: number; bytes: number }>;
  private resolve!: (r: { rows: number; bytes: number }) => void;
  private reject!: (err: unknown) => void;
  private connection: Connection | null = null;
  private stream: Socket | null = null;
  private pgOnData: ((chunk: Buffer) => void) | null = null;
  private readonly onReadable = () => this.forward();
  private batch = new CopyRowBatch();
  /** A message cut by the end of a read: its pieces so far, their length, its total length. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private carryNeed = 0;
  private busy = false;
  private finished = false;
  private settled = false;
  private failure: unknown = null;
  private rows = 0;
  private bytes = 0;

  constructor(
    readonly text: string,
    private readonly onBatch: (rows: CopyRowBatch) => Promise<void>,
    private readonly batchRows: number,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A caller that awaits `done` later must not see an unhandled rejection in between.
    this.done.catch(() => undefined);
  }

  /** pg's Submittable: called once the query is first in the client's queue. */
  submit(connection: Connection): void {
    this.connection = connection;
    const stream = (connection as unknown as { stream: Socket }).stream;
    const listeners = stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`pg's socket has ${listeners.length} data listeners, not 1`);
    this.stream = stream;
    this.pgOnData = listeners[0];
    stream.removeListener('data', this.pgOnData);
    stream.pause();
    stream.on('readable', this.onReadable);
    connection.query(this.text);
    this.forward();
  }

  handleError(err: unknown): void {
    this.settle(this.failure ?? err);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    this.settle(this.failure);
  }

  private settle(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    if (err) this.reject(err);
    else this.resolve({ rows: this.rows, bytes: this.bytes });
  }

  private forward(): void {
    const stream = this.stream;
    if (!stream || this.busy || this.finished) return;
    let chunk: Buffer | null;
    while (!this.busy && !this.finished && (chunk = stream.read()) !== null) this.parse(chunk);
  }

  private parse(chunk: Buffer): void {
    let pos = 0;
    if (this.carryBytes > 0) {
      pos = this.completeCarry(chunk);
      if (pos < 0) return;
    }
    let spanStart = -1;
    let spanEnd = -1;
    const n = chunk.length;
    while (pos + HEADER <= n) {
      const code = chunk[pos];
      const end = pos + 1 + chunk.readUInt32BE(pos + 1);
      if (end > n) break;
      if (code === COPY_DATA) {
        if (!this.row(chunk, pos + HEADER, end)) return;
        if (spanStart < 0) spanStart = pos;
        spanEnd = end;
        // Five stores, not Buffer#fill: a native call per row cost more than the row's header.
        chunk[pos] = 10;
        chunk[pos + 1] = 10;
        chunk[pos + 2] = 10;
        chunk[pos + 3] = 10;
        chunk[pos + 4] = 10;
        pos = end;
        continue;
      }
      if (spanStart >= 0) this.checkSpan(chunk, spanStart, spanEnd);
      spanStart = -1;
      const from = this.control(pos, end, code);
      if (from >= 0) return this.end(chunk.subarray(from), code === COPY_DONE);
      pos = end;
    }
    if (spanStart >= 0) this.checkSpan(chunk, spanStart, spanEnd);
    if (pos < n) {
      this.carry.push(chunk.subarray(pos));
      this.carryBytes = n - pos;
      this.carryNeed = n - pos >= HEADER ? 1 + chunk.readUInt32BE(pos + 1) : 0;
    }
    this.maybeDeliver();
  }

  /**
   * Adds the start of `chunk` to the message carried over from earlier reads; once it is whole,
   * handles it. Returns where the rest of the chunk starts, or -1 if the chunk was used up (or
   * the message ended the COPY).
   */
  private completeCarry(chunk: Buffer): number {
    let pos = 0;
    if (this.carryNeed === 0) {
      // The header itself was cut: take the bytes that complete it.
      const take = Math.min(HEADER - this.carryBytes, chunk.length);
      this.carry.push(chunk.subarray(0, take));
      this.carryBytes += take;
      pos = take;
      if (this.carryBytes < HEADER) return -1;
      const head = Buffer.concat(this.carry, this.carryBytes);
      this.carry = [head];
      this.carryNeed = 1 + head.readUInt32BE(1);
    }
    const take = Math.min(this.carryNeed - this.carryBytes, chunk.length - pos);
    this.carry.push(chunk.subarray(pos, pos + take));
    this.carryBytes += take;
    pos += take;
    if (this.carryBytes < this.carryNeed) return -1;
    const message = Buffer.concat(this.carry, this.carryBytes);
    this.carry = [];
    this.carryBytes = 0;
    this.carryNeed = 0;
    const code = message[0];
    if (code === COPY_DATA) {
      if (!this.row(message, HEADER, message.length)) return -1;
      if (!isUtf8(message.subarray(HEADER))) this.batch.utf8 = false;
      return pos;
    }
    const from = this.control(0, message.length, code);
    if (from < 0) return pos;
    // The rest of this read follows the message that ended the COPY.
    this.end(Buffer.concat([message.subarray(from), chunk.subarray(pos)]), code === COPY_DONE);
    return -1;
  }

  /** A CopyData body [start, end): its row without the newline. False if the COPY is broken. */
  private row(buf: Buffer, start: number, end: number): boolean {
    if (end <= start || buf[end - 1] !== 10) {
      // Not what a text-format COPY sends: the stream cannot be trusted any further.
      this.failure ??= new Error('COPY data message is not a whole text row (no final newline)');
      this.finished = true;
      this.stream?.destroy();
      return false;
    }
    if (!this.failure) this.batch.push(buf, start, end - 1);
    return true;
  }

  private checkSpan(chunk: Buffer, start: number, end: number): void {
    if (this.batch.utf8 && !isUtf8(chunk.subarray(start, end))) this.batch.utf8 = false;
  }

  /**
   * Any message but CopyData, at [pos, end) of its buffer. Returns -1 to read on, or where the bytes that
   * pg must parse start when the message ended the COPY: after CopyDone, or at an ErrorResponse
   * (pg parses it and calls handleError).
   */
  private control(pos: number, end: number, code: number): number {
    switch (code) {
      case COPY_OUT_RESPONSE:
      case NOTICE_RESPONSE:
      case PARAMETER_STATUS:
      case NOTIFICATION_RESPONSE:
        return -1;
      case COPY_DONE:
        return end;
      case ERROR_RESPONSE:
      default:
        return pos;
    }
  }

  /** The COPY is over: after CopyDone the last batch goes out first; then pg gets the socket back. */
  private end(rest: Buffer, copyDone: boolean): void {
    this.finished = true;
    const last = this.batch;
    this.batch = new CopyRowBatch();
    if (!copyDone || last.length === 0 || this.failure) {
      this.detach(rest);
      return;
    }
    this.busy = true;
    void this.deliver(last).then(() => {
      this.busy = false;
      this.detach(rest);
    });
  }

  private maybeDeliver(): void {
    if (this.batch.length < this.batchRows || this.failure) return;
    const batch = this.batch;
    this.batch = new CopyRowBatch();
    this.busy = true;
    void this.deliver(batch).then(() => {
      this.busy = false;
      this.forward();
    });
  }

  private async deliver(batch: CopyRowBatch): Promise<void> {
    try {
      await this.onBatch(batch);
      this.rows += batch.length;
      this.bytes += batch.bytes;
    } catch (err) {
      this.failure = err;
    }
  }

  private detach(rest: Buffer): void {
    const stream = this.stream!;
    this.stream = null;
    stream.removeListener('readable', this.onReadable);
    stream.on('data', this.pgOnData!);
    if (rest.length) this.pgOnData!(rest);
    // Anything already buffered in the socket after `rest` flows to pg once it resumes.
    process.nextTick(() => stream.resume());
  }
}
