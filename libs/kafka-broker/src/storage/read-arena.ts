/**
 * Memory that the batches of one fetch response are read into, reused from one response to the
 * next instead of a new buffer per partition per fetch: every such buffer is external memory, and
 * external memory is what makes V8 run full collections in the broker. Views handed out by `take`
 * stay valid until `reset`, which the owner calls only once nothing uses them any more (the
 * server: once the response that holds them is written to the socket).
 */
export class ReadArena {
  private buf: Buffer;
  private used = 0;
  /** What the last fills asked for, so the next buffer holds a whole response. */
  private wanted = 0;

  constructor(
    initialBytes = 1 << 20,
    private readonly maxBytes = 16 << 20,
  ) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** `n` bytes to read into: from the arena while it has room (up to maxBytes), else a buffer of their own. */
  take(n: number): Buffer {
    this.wanted += n;
    if (this.used + n > this.buf.length) return Buffer.allocUnsafe(n);
    const view = this.buf.subarray(this.used, this.used + n);
    this.used += n;
    return view;
  }

  /** Every view taken so far is dropped; the next fill starts over (in a larger buffer if one did not fit). */
  reset(): void {
    if (this.wanted > this.buf.length && this.buf.length < this.maxBytes)
      this.buf = Buffer.allocUnsafe(Math.min(this.maxBytes, Math.max(this.wanted, 2 * this.buf.length)));
    this.used = 0;
    this.wanted = 0;
  }
}
