/** Byte-level helpers shared by the encoders and COPY writers: buffer views, slabs, hex digits. */

/**
 * Below this many bytes a loop copies (and checks) faster than a byteView and a native set or
 * search (2M copies: 24 bytes 0.09-0.17 s by loop, 0.22 s by view; 48 bytes 0.31 against 0.24).
 */
export const SMALL_COPY = 40;

/**
 * Compares a[aStart, aStart + n) with b[bStart, bStart + n) byte by byte: -1, 0 or 1. For the
 * short byte strings of the per-record paths (header names, stream positions, schema and table
 * names), a loop costs a fraction of Buffer#compare with offsets, whose argument checks and
 * native call were 5% of the applier's busy time.
 */
export function compareBytes(
  a: Uint8Array,
  aStart: number,
  b: Uint8Array,
  bStart: number,
  n: number,
): number {
  for (let i = 0; i < n; i++) {
    const x = a[aStart + i];
    const y = b[bStart + i];
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * A Uint8Array view of src[start, end): a third cheaper to make than Buffer#subarray's Buffer,
 * and TypedArray#set and #indexOf on it copy and search natively (Buffer#copy of 84 bytes
 * costs as much again in argument handling).
 */
export function byteView(src: Buffer, start: number, end: number): Uint8Array {
  return new Uint8Array(src.buffer, src.byteOffset + start, end - start);
}

/**
 * Spare slab buffers. Each is external memory, and allocating one per batch (hundreds of MB per
 * run) is what makes V8 run full collections: a capture worker's slabs go back here once their
 * records are acknowledged and are written again for a later batch.
 */
export class SlabPool {
  private readonly free: Buffer[] = [];

  constructor(
    readonly slabBytes = 1 << 20,
    private readonly keep = 8,
  ) {}

  /** A buffer of at least `n` bytes: a spare one when `n` fits a slab, else a new one. */
  take(n: number): Buffer {
    if (n <= this.slabBytes) return this.free.pop() ?? Buffer.allocUnsafe(this.slabBytes);
    return Buffer.allocUnsafe(n);
  }

  /** A buffer nothing uses any more; kept when it is of the pool's size and the pool has room. */
  give(buf: Buffer): void {
    if (buf.length === this.slabBytes && this.free.length < this.keep) this.free.push(buf);
  }
}

/** Each byte's value as a hex digit (either case), or 255. */
export const HEX_VALUE = new Uint8Array(256).fill(255);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}
