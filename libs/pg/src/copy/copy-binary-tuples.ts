import * as core from '@pgferry/core';

// Bound once: TypeScript's CommonJS output reads another package's export through a getter on
// its index, a lookup per use that V8 does not inline; on this per-byte path that cost 0.26 s of
// the capture's 7 cpu-s, as much in the applier (npm run bench -- full, cpu profile).
const { byteView, HEX_VALUE, SMALL_COPY } = core;
import { CopyChunks } from './copy-chunks';

/**
 * PostgreSQL COPY binary format (docs: "COPY", Binary Format): a signature and header, then per
 * tuple an int16 field count and per field an int32 length (-1: NULL) and the bytes its type's
 * receive function reads, then an int16 -1 trailer. All integers are big-endian.
 */
const HEADER = Buffer.concat([
  Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
  Buffer.alloc(4), // flags: no OIDs
  Buffer.alloc(4), // header extension length
]);
const TRAILER = Buffer.from([0xff, 0xff]);
const TWO_32 = 4294967296;

/**
 * The COPY binary format's framing (header, field count, NULL, trailer), its big-endian
 * integers, and the plain values: bool, integers, oid, floats, byte strings, jsonb, uuid.
 * CopyBinarySink adds the values converted on the way.
 */
export abstract class CopyBinaryTuples extends CopyChunks {
  protected i32(v: number): void {
    const b = this.buf;
    const p = this.pos;
    b[p] = v >>> 24;
    b[p + 1] = v >>> 16;
    b[p + 2] = v >>> 8;
    b[p + 3] = v;
    this.pos = p + 4;
  }

  protected i16(v: number): void {
    const b = this.buf;
    b[this.pos++] = v >>> 8;
    b[this.pos++] = v;
  }

  /** A 64-bit integer from a safe integer number. */
  protected i64(v: number): void {
    const hi = Math.floor(v / TWO_32);
    this.i32(hi);
    this.i32(v - hi * TWO_32);
  }

  /**
   * The 64-bit integer secs * 1e6 + micros (0 <= micros < 1e6, |secs| < 2^40), exactly and
   * without a BigInt: secs splits at 2^16 so that every product stays below 2^53.
   */
  protected i64Micros(secs: number, micros: number): void {
    const sh = Math.floor(secs / 65536);
    const b = (secs - sh * 65536) * 1e6 + micros;
    const bh = Math.floor(b / 65536);
    const c = sh * 1e6 + bh;
    const hi = Math.floor(c / 65536);
    this.i32(hi);
    this.i32((c - hi * 65536) * 65536 + (b - bh * 65536));
  }

  beginRow(fields: number): void {
    this.ensure(2);
    this.i16(fields);
  }

  endRow(): void {
    this.finishRow();
  }

  nul(): void {
    this.ensure(4);
    this.i32(-1);
  }

  bool(v: boolean): void {
    this.ensure(5);
    this.i32(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  int2(v: number): boolean {
    if (v < -32768 || v > 32767) return false;
    this.ensure(6);
    this.i32(2);
    this.i16(v);
    return true;
  }

  int4(v: number): void {
    this.ensure(8);
    this.i32(4);
    this.i32(v);
  }

  /** int8 from an Avro long (oid has its own writer). */
  int8(v: number | bigint): void {
    this.ensure(12);
    this.i32(8);
    if (typeof v === 'number') this.i64(v);
    else {
      this.buf.writeBigInt64BE(v, this.pos);
      this.pos += 8;
    }
  }

  oid(v: number | bigint): boolean {
    if (typeof v !== 'number' || v < 0 || v > 0xffffffff) return false;
    this.ensure(8);
    this.i32(4);
    this.i32(v);
    return true;
  }

  /** float4 (4 bytes) or float8 (8 bytes) from its little-endian IEEE bytes: the same bits. */
  floatLE(src: Buffer, at: number, n: 4 | 8): void {
    this.ensure(4 + n);
    this.i32(n);
    const b = this.buf;
    let p = this.pos;
    for (let i = n - 1; i >= 0; i--) b[p++] = src[at + i];
    this.pos = p;
  }

  /** A value whose binary form is its bytes: text, varchar, bpchar, name, json, bytea. */
  bytes(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(4 + n);
    this.i32(n);
    this.copyIn(src, start, end);
  }

  /** src[start, end) at pos (room ensured): a loop below SMALL_COPY bytes, a native set above. */
  protected copyIn(src: Buffer, start: number, end: number): void {
    if (end - start >= SMALL_COPY) this.buf.set(byteView(src, start, end), this.pos);
    else {
      const b = this.buf;
      let p = this.pos;
      for (let i = start; i < end; i++) b[p++] = src[i];
    }
    this.pos += end - start;
  }

  /** jsonb: version 1, then its text. */
  jsonb(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(5 + n);
    this.i32(n + 1);
    this.buf[this.pos++] = 1;
    this.copyIn(src, start, end);
  }

  /** uuid from its 36-character text form. */
  uuid(src: Buffer, start: number, end: number): boolean {
    if (end - start !== 36) return false;
    this.ensure(20);
    const b = this.buf;
    const at = this.pos + 4;
    let w = at;
    for (let i = start; i < end;) {
      if (i - start === 8 || i - start === 13 || i - start === 18 || i - start === 23) {
        if (src[i++] !== 45) return false;
        continue;
      }
      const h = HEX_VALUE[src[i]];
      const l = HEX_VALUE[src[i + 1]];
      if ((h | l) > 15) return false;
      b[w++] = (h << 4) | l;
      i += 2;
    }
    this.i32(16);
    this.pos = at + 16;
    return true;
  }

  /** Every finished tuple, framed by the header and the trailer; the sink is empty afterwards. */
  take(): Buffer[] {
    if (!this.rows) return this.takeRows();
    return [HEADER, ...this.takeRows(), TRAILER];
  }
}

/** A big-endian int32 at b[p, p + 4), for values patched after their bytes are written. */
export function writeI32(b: Buffer, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}
