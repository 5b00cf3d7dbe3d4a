import type { ColumnInfo } from '@pgferry/pg';
import { avroTypeFor, converterFor, type AvroSchema } from './avro-mapping';
import { byteView, HEX_VALUE, SlabPool, SMALL_COPY } from '@pgferry/core';

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

  /** Avro long: zigzag varint of a 64-bit integer (a safe integer or a BigInt). */
  long(n: number | bigint): void {
    if (typeof n === 'number' && n >= -0x40000000 && n < 0x40000000) return this.int(n);
    this.ensure(10);
    let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
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

/**
 * Writes one non-NULL COPY text field [start, end) of `line`; `text` unescapes it on demand
 * (most fields have no escape and are copied as bytes).
 */
export type FieldWriter = (out: AvroSlab, line: Buffer, start: number, end: number) => void;

const BACKSLASH = 92;

/**
 * Whether line[start, end) holds a backslash. The search stays inside the field: `line` may be
 * a whole network read, where an unbounded indexOf would scan every row after this one.
 */
function hasBackslash(line: Buffer, start: number, end: number): boolean {
  // A loop below SMALL_COPY bytes: cheaper than a view and indexOf there, dearer above.
  if (end - start >= SMALL_COPY) return byteView(line, start, end).indexOf(BACKSLASH) >= 0;
  for (let i = start; i < end; i++) if (line[i] === BACKSLASH) return true;
  return false;
}

/** 10^0 to 10^22: every one is a double exactly. */
const POWERS_OF_TEN = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * A float field's text as Number() reads it, without a string, when it is a plain decimal
 * ([-]digits[.digits], no exponent) whose digits as an integer m stay below 2^53 with at most 22
 * after the point: m and 10^k are then doubles exactly, and IEEE division rounds m / 10^k
 * correctly, which is what parsing the decimal does (Clinger's fast path). null otherwise
 * (exponents, NaN, Infinity, more digits): the caller parses the text.
 */
function decimalDouble(line: Buffer, start: number, end: number): number | null {
  let i = start;
  const neg = line[i] === 45;
  if (neg) i++;
  if (i >= end) return null;
  let m = 0;
  let point = -1;
  for (; i < end; i++) {
    const c = line[i];
    if (c === 46 && point < 0) point = i;
    else if (c >= 48 && c <= 57) {
      m = m * 10 + (c - 48);
      if (m >= 9007199254740992) return null;
    } else return null;
  }
  const k = point < 0 ? 0 : end - point - 1;
  if (k > 22 || (point >= 0 && (k === 0 || point === (neg ? start + 1 : start)))) return null;
  const v = k ? m / POWERS_OF_TEN[k] : m;
  return neg ? -v : v;
}

/** A COPY field's integer text (int2, int4, int8, oid) as a number, or null beyond 2^53. */
function parseInteger(line: Buffer, start: number, end: number): number | null {
  let i = start;
  const neg = line[i] === 45;
  if (neg || line[i] === 43) i++;
  if (end - i > 15 || i >= end) return null;
  let n = 0;
  for (; i < end; i++) {
    const d = line[i] - 48;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}

/**
 * The unscaled value of a numeric's COPY text ([-]digits[.digits]) at `scale`, as a safe integer:
 * fraction digits beyond `scale` are dropped and missing ones are zeros (as decimalToBytes does).
 * Null for anything else (NaN, Infinity, an exponent) or more than 15 digits: those take the
 * general path.
 */
function unscaledDecimal(line: Buffer, start: number, end: number, scale: number): number | null {
  let i = start;
  const neg = line[i] === 45;
  if (neg) i++;
  let n = 0;
  let digits = 0;
  for (; i < end && line[i] !== 46; i++) {
    const d = line[i] - 48;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
    digits++;
  }
  if (digits === 0) return null;
  let frac = 0;
  if (i < end) {
    i++;
    if (i === end) return null;
    for (; i < end; i++) {
      const d = line[i] - 48;
      if (d < 0 || d > 9) return null;
      if (frac < scale) {
        n = n * 10 + d;
        frac++;
        digits++;
      }
    }
  }
  for (; frac < scale; frac++) {
    n *= 10;
    digits++;
  }
  if (digits > 15) return null;
  return neg && n !== 0 ? -n : n;
}

/**
 * The writer of a column's field, nullable or not, for the Avro type avroTypeFor gives it; the
 * union branch is chosen the way avsc's unwrapped unions choose it (by the value's JS type).
 */
export function fieldWriter(
  col: ColumnInfo,
  nullable: boolean,
  unescape: (line: Buffer, start: number, end: number) => string,
): FieldWriter {
  const type = avroTypeFor(col);
  const branches = (Array.isArray(type) ? type : [type]) as Array<Record<string, unknown>>;
  const base = nullable ? 1 : 0;
  const text = (line: Buffer, start: number, end: number) =>
    hasBackslash(line, start, end) ? unescape(line, start, end) : line.toString('utf8', start, end);
  if (branches.length === 1) {
    const t = branches[0];
    const idx = nullable ? (out: AvroSlab) => out.byte(2) : () => undefined;
    switch (t.type) {
      case 'boolean':
        return (out, line, start, end) => {
          idx(out);
          out.byte(end - start === 1 && line[start] === 116 ? 1 : 0);
        };
      case 'int':
        return (out, line, start, end) => {
          idx(out);
          out.int(parseInteger(line, start, end) ?? Number(text(line, start, end)));
        };
      case 'long':
        return (out, line, start, end) => {
          idx(out);
          const n = parseInteger(line, start, end);
          out.long(n ?? BigInt(text(line, start, end)));
        };
      case 'float':
      case 'double': {
        const conv = converterFor(t as AvroSchema);
        const single = t.type === 'float';
        return (out, line, start, end) => {
          idx(out);
          const v = decimalDouble(line, start, end) ?? (conv.toAvro(text(line, start, end)) as number);
          if (single) out.float(v);
          else out.double(v);
        };
      }
      case 'bytes':
        if (t.logicalType === undefined)
          // bytea in hex output is "\x..." in its text form, "\\x..." in COPY text.
          return (out, line, start, end) => {
            idx(out);
            if (
              end - start >= 3 &&
              line[start] === BACKSLASH &&
              line[start + 1] === BACKSLASH &&
              line[start + 2] === 120 &&
              out.hexDigits(line, start + 3, end)
            )
              return;
            out.hex(text(line, start, end).slice(2));
          };
        break;
      case 'string':
        return (out, line, start, end) => {
          idx(out);
          if (!out.plain(line, start, end)) out.string(unescape(line, start, end));
        };
    }
  }
  // Unions ([decimal, string], [date, string], [timestamp, string]): the mapping's converter
  // decides the value, its JS type decides the branch. A branch index is written for a union
  // and for a nullable type (["null", ...branches] flattened, as buildSchemas writes it).
  const conv = converterFor(type);
  const indexed = nullable || Array.isArray(type);
  const stringBranch = branches.findIndex((b) => b.type === 'string');
  const main = branches.findIndex((b) => b.type !== 'string');
  const mainType = branches[main]?.type;
  // The two RangeErrors below: converterFor and the schema come from one mapping, so only a
  // mapping bug makes them disagree.
  const general: FieldWriter = (out, line, start, end) => {
    const v = conv.toAvro(text(line, start, end));
    if (typeof v === 'string') {
      if (stringBranch < 0) throw new RangeError(`${col.name}: no string branch for ${JSON.stringify(v)}`);
      if (indexed) out.int(base + stringBranch);
      out.string(v);
      return;
    }
    if (indexed) out.int(base + main);
    if (mainType === 'int') out.int(v as number);
    else if (mainType === 'long') out.long(v as bigint);
    else if (mainType === 'bytes') out.bytes(v as Buffer);
    else throw new RangeError(`${col.name}: no writer for Avro type ${String(mainType)}`);
  };
  if (mainType === 'bytes' && branches[main].logicalType === 'decimal') {
    // numeric(p, s): most values are short; written without a string, a BigInt or a Buffer.
    const scale = (branches[main].scale as number | undefined) ?? 0;
    return (out, line, start, end) => {
      const n = unscaledDecimal(line, start, end, scale);
      if (n === null) return general(out, line, start, end);
      if (indexed) out.int(base + main);
      out.decimal(n);
    };
  }
  return general;
}
