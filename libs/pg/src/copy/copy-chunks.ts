import type { SlabPool } from '@pgferry/core';

const NO_BYTES = Buffer.alloc(0);

/**
 * Whole COPY rows (text lines or binary tuples) written into large buffers, handed to COPY FROM
 * STDIN as they are: the buffer mechanics both sinks share. A row is written from `rowStart` on
 * and ended with `finishRow`; a full buffer moves the unfinished row into the next one, so every
 * chunk holds whole rows. With a pool, buffers come from it and go back with `release`: a
 * batch's megabytes are then not new external memory each time (which makes V8 run full
 * collections). Buffers are allocated on the first write (a sink taken and dropped allocates
 * nothing more).
 */
export class CopyChunks {
  protected readonly done: Buffer[] = [];
  protected buf: Buffer = NO_BYTES;
  protected pos = 0;
  protected rowStart = 0;
  rows = 0;
  /** The buffers taken from the pool, for `release`. */
  private readonly used: Buffer[] = [];

  constructor(
    private readonly chunkBytes = 1 << 20,
    private readonly pool: SlabPool | null = null,
  ) {}

  /** Room for `n` more bytes; may move the unfinished row to a new buffer. */
  protected ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const partial = this.pos - this.rowStart;
    if (this.rowStart > 0) this.done.push(this.buf.subarray(0, this.rowStart));
    const size = Math.max(this.chunkBytes, 2 * (partial + n));
    const next = this.pool ? this.pool.take(size) : Buffer.allocUnsafe(size);
    if (this.pool) this.used.push(next);
    this.buf.copy(next, 0, this.rowStart, this.pos);
    this.buf = next;
    this.pos = partial;
    this.rowStart = 0;
  }

  /** Ends the row being written. */
  protected finishRow(): void {
    this.rowStart = this.pos;
    this.rows++;
  }

  /** Drops the unfinished row. */
  rollback(): void {
    this.pos = this.rowStart;
  }

  /** Every finished row's bytes, in order; the sink is empty afterwards. */
  protected takeRows(): Buffer[] {
    const out = [...this.done];
    if (this.rowStart > 0) out.push(this.buf.subarray(0, this.rowStart));
    this.done.length = 0;
    this.buf = NO_BYTES;
    this.pos = 0;
    this.rowStart = 0;
    this.rows = 0;
    return out;
  }

  /**
   * Gives the buffers back to the pool: only once nothing reads what was taken (the COPY that
   * sent them has ended). The sink is not used afterwards.
   */
  release(): void {
    for (const b of this.used) this.pool?.give(b);
    this.used.length = 0;
  }
}
