import * as core from '@pgferry/core';
import type { SlabPool } from '@pgferry/core';

// Bound once: TypeScript's CommonJS output reads another package's export through a getter on
// its index, a lookup per use that V8 does not inline; on this per-byte path that cost 0.26 s of
// the capture's 7 cpu-s (npm run bench -- full, cpu profile).
const { byteView, HEX_VALUE, SMALL_COPY } = core;

export const BACKSLASH = 92;

/** The largest long written without BigInt arithmetic (its zigzag stays a safe integer). */
const LONG_AS_NUMBER = 2n ** 52n;

/**
 * Avro binary written straight from COPY text fields into large shared slabs, without an
 * intermediate JavaScript record, a Buffer per value or avsc's generic writer. The bytes are
 * exactly what avsc writes for the same schema and values (table-codec.spec.ts compares them):
 * this is the snapshot's hot path, avsc stays the reference and the decoder.
 *
 * A slab is never written again once a view of it was handed out, so the views (Kafka keys and
 * values) stay valid for as long as their holder keeps them; a full slab is replaced by a new
 * one and left to the garbage collector with its last view.
 */
export class AvroSlab {
  buf: Buffer;
  pos = 0;
  /** Where the value being written starts; `ensure` carries it over to a new slab. */
  mark = 0;
  /** Every buffer this slab wrote into, for `release`. */
  private readonly used: Buffer[] = [];

  /**
   * With a pool, buffers come from it and go back to it on `release`. A `contiguous` slab keeps
   * everything written in one buffer: a full one is replaced by a larger copy of it (positions
   * stay valid), for writers that frame what they wrote afterwards.
   */
  constructor(
    private readonly slabBytes = 1 << 20,
    private readonly pool: SlabPool | null = null,
    private readonly contiguous = false,
  ) {
    this.buf = this.allocate(slabBytes);
  }

  private allocate(n: number): Buffer {
    const buf = this.pool ? this.pool.take(n) : Buffer.allocUnsafe(n);
    if (this.pool) this.used.push(buf);
    return buf;
  }

  /** Room for `n` more bytes; may move the unfinished value (from `mark`) to a new slab. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.contiguous) {
      const grown = this.allocate(Math.max(2 * this.buf.length, this.pos + n));
      this.buf.copy(grown, 0, 0, this.pos);
      this.buf = grown;
      return;
    }
    const partial = this.pos - this.mark;
    const next = this.allocate(Math.max(this.slabBytes, 2 * (partial + n)));
    this.buf.copy(next, 0, this.mark, this.pos);
    this.buf = next;
    this.mark = 0;
    this.pos = partial;
  }

  /**
   * Gives the slab's buffers back to its pool: only once nothing uses a view of them any more
   * (for the capture: once Kafka acknowledged the records). The slab is not used afterwards.
   */
  release(): void {
    for (const b of this.used) this.pool?.give(b);
    this.used.length = 0;
  }

  /** Starts a value at the current position. */
  begin(): void {
    this.mark = this.pos;
  }

  /** The value written since `begin`, as a view of the slab. */
  end(): Buffer {
    return this.buf.subarray(this.mark, this.pos);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** Avro int: zigzag varint of a 32-bit integer. */
  int(n: number): void {
    this.ensure(5);
    let z = ((n << 1) ^ (n >> 31)) >>> 0;
    while (z > 0x7f) {
      this.buf[this.pos++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    this.buf[this.pos++] = z;
  }

  /**
   * Avro long: zigzag varint of a 64-bit integer (a safe integer or a BigInt). Values within
   * 2^52 (LSNs, transaction ids, times in ms: nearly all) are written in doubles, exactly:
   * BigInt arithmetic cost the change stream's encoder 3.5 of its 57 cpu-s.
   */
  long(n: number | bigint): void {
    if (typeof n === 'bigint') {
      if (n > LONG_AS_NUMBER || n < -LONG_AS_NUMBER) return this.bigLong(n);
      n = Number(n);
    }
    if (n >= -0x40000000 && n < 0x40000000) return this.int(n);
    if (n > 2 ** 52 || n < -(2 ** 52)) return this.bigLong(BigInt(n));
    this.ensure(10);
    let z = n >= 0 ? n * 2 : -n * 2 - 1;
    const buf = this.buf;
    let pos = this.pos;
    while (z > 0x7f) {
      buf[pos++] = (z % 128) | 0x80;
      z = Math.floor(z / 128);
    }
    buf[pos++] = z;
    this.pos = pos;
  }

  private bigLong(n: bigint): void {
    this.ensure(10);
    let z = BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
    while (z > 0x7fn) {
      this.buf[this.pos++] = Number(z & 0x7fn) | 0x80;
      z >>= 7n;
    }
    this.buf[this.pos++] = Number(z);
  }

  float(v: number): void {
    this.ensure(4);
    this.pos = this.buf.writeFloatLE(v, this.pos);
  }

  double(v: number): void {
    this.ensure(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
  }

  /** Avro bytes or string from raw bytes: length, then the bytes. */
  raw(src: Buffer, start: number, end: number): void {
    this.int(end - start);
    this.append(src, start, end);
  }

  /** src[start, end) as it is, with no length before it. */
  append(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n < SMALL_COPY) {
      const buf = this.buf;
      let pos = this.pos;
      for (let i = start; i < end; i++) buf[pos++] = src[i];
      this.pos = pos;
    } else {
      this.buf.set(byteView(src, start, end), this.pos);
      this.pos += n;
    }
  }

  /**
   * raw() of a COPY text field that holds no backslash, in one pass that copies as it checks
   * (a scan for backslashes and then a copy read every byte twice). At the first backslash it
   * writes nothing and returns false: the field has escapes to undo. Long fields are scanned
   * natively, then copied.
   */
  plain(src: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (n >= SMALL_COPY) {
      // One view, searched and copied natively: twice as fast as the loop for a char(84) filler.
      const view = byteView(src, start, end);
      if (view.indexOf(BACKSLASH) >= 0) return false;
      this.int(n);
      this.ensure(n);
      this.buf.set(view, this.pos);
      this.pos += n;
      return true;
    }
    this.ensure(n + 5);
    const at = this.pos;
    this.int(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = start; i < end; i++) {
      const c = src[i];
      if (c === BACKSLASH) {
        this.pos = at;
        return false;
      }
      buf[pos++] = c;
    }
    this.pos = pos;
    return true;
  }

  /**
   * Avro bytes of the hex digits src[start, end) (lower or upper case, even length), decoded
   * by table without a string. Writes nothing and returns false when a character is not a hex
   * digit or the length is odd.
   */
  hexDigits(src: Buffer, start: number, end: number): boolean {
    if ((end - start) & 1) return false;
    const n = (end - start) >>> 1;
    this.ensure(n + 5);
    const at = this.pos;
    this.int(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = start; i < end; i += 2) {
      const hi = HEX_VALUE[src[i]];
      const lo = HEX_VALUE[src[i + 1]];
      if ((hi | lo) > 15) {
        this.pos = at;
        return false;
      }
      buf[pos++] = (hi << 4) | lo;
    }
    this.pos = pos;
    return true;
  }

  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.int(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** Avro bytes of a hex string (even length, no prefix). */
  hex(h: string): void {
    const n = h.length >>> 1;
    this.int(n);
    this.ensure(n);
    this.pos += this.buf.write(h, this.pos, n, 'hex');
  }

  bytes(b: Buffer): void {
    this.raw(b, 0, b.length);
  }

  /**
   * Avro decimal bytes of an unscaled safe integer: big-endian two's complement in the fewest
   * bytes that hold it (at least one), as avro-mapping's decimalToBytes writes it.
   */
  decimal(n: number): void {
    let len = 1;
    while (n >= 2 ** (8 * len - 1) || n < -(2 ** (8 * len - 1))) len++;
    this.int(len);
    this.ensure(len);
    // A negative n is the bitwise complement of -n - 1, byte by byte.
    const neg = n < 0;
    let v = neg ? -n - 1 : n;
    for (let i = this.pos + len - 1; i >= this.pos; i--) {
      const b = v % 256;
      this.buf[i] = neg ? 255 - b : b;
      v = (v - b) / 256;
    }
    this.pos += len;
  }
}
