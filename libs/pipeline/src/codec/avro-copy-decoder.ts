import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { avscOptions, converterFor, type AvroSchema } from './avro-mapping';
import type { RegistryClient } from './registry-client';

/** For each byte, the letter that follows the backslash in its COPY text escape, or 0. */
const COPY_ESCAPE = new Uint8Array(256);
COPY_ESCAPE[92] = 92;
COPY_ESCAPE[10] = 110; // n
COPY_ESCAPE[13] = 114; // r
COPY_ESCAPE[9] = 116; // t

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

const NO_BYTES = Buffer.alloc(0);

/**
 * Bytes of COPY text lines, written into large buffers and handed to COPY FROM STDIN as they
 * are: no string per field or per line.
 */
export class CopyTextSink {
  private readonly done: Buffer[] = [];
  private buf: Buffer;
  private pos = 0;
  private lineStart = 0;
  rows = 0;

  /** Buffers are allocated on the first write (a sink taken and dropped allocates nothing more). */
  constructor(private readonly chunkBytes = 1 << 20) {
    this.buf = NO_BYTES;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    // The unfinished line moves along, so every chunk holds whole lines.
    const partial = this.pos - this.lineStart;
    if (this.lineStart > 0) this.done.push(this.buf.subarray(0, this.lineStart));
    const next = Buffer.allocUnsafe(Math.max(this.chunkBytes, 2 * (partial + n)));
    this.buf.copy(next, 0, this.lineStart, this.pos);
    this.buf = next;
    this.pos = partial;
    this.lineStart = 0;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  ascii(s: string): void {
    this.ensure(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  /**
   * An integer in decimal, as String(n) prints it, written digit by digit: no string per
   * value. Exact for safe integers (what readLong returns as a number); a bigint goes through
   * its string.
   */
  int(n: number | bigint): void {
    if (typeof n === 'bigint') return this.ascii(String(n));
    this.ensure(17);
    const b = this.buf;
    let p = this.pos;
    if (n < 0) {
      b[p++] = 45;
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let w = p + digits;
    do {
      const q = Math.floor(n / 10);
      b[--w] = 48 + (n - q * 10);
      n = q;
    } while (n > 0);
    this.pos = p + digits;
  }

  /** A text value, escaped for COPY text (backslash, newline, carriage return, tab). */
  text(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(2 * n);
    const start = this.pos;
    this.buf.write(s, start, n, 'utf8');
    this.escapeInPlace(start, start + n);
  }

  /** UTF-8 bytes of a text value, escaped for COPY text. */
  utf8(src: Buffer, start: number, end: number): void {
    this.ensure(2 * (end - start));
    if (end - start > 256) {
      const at = this.pos;
      src.copy(this.buf, at, start, end);
      this.escapeInPlace(at, at + end - start);
      return;
    }
    // Short values: one pass that copies and escapes, cheaper than Buffer#copy and a scan.
    const b = this.buf;
    let w = this.pos;
    for (let i = start; i < end; i++) {
      const c = src[i];
      const e = COPY_ESCAPE[c];
      if (e === 0) b[w++] = c;
      else {
        b[w++] = 92;
        b[w++] = e;
      }
    }
    this.pos = w;
  }

  /**
   * A bytea value's COPY text from its bytes: the hex output form "\\x..." with its backslash
   * escaped, as text() prints the converter's string, without the string.
   */
  byteaHex(src: Buffer, start: number, end: number): void {
    this.ensure(3 + 2 * (end - start));
    const b = this.buf;
    let w = this.pos;
    b[w++] = 92;
    b[w++] = 92;
    b[w++] = 120;
    for (let i = start; i < end; i++) {
      const c = src[i];
      b[w++] = HEX_DIGITS[c >> 4];
      b[w++] = HEX_DIGITS[c & 15];
    }
    this.pos = w;
  }

  /** Escapes buf[start, end) in place (room for twice the length is ensured) and moves pos. */
  private escapeInPlace(start: number, end: number): void {
    const b = this.buf;
    let specials = 0;
    for (let i = start; i < end; i++) {
      const c = b[i];
      if (c === 92 || c === 10 || c === 13 || c === 9) specials++;
    }
    if (specials === 0) {
      this.pos = end;
      return;
    }
    // Back to front, so nothing is overwritten before it is read.
    let w = end + specials;
    for (let i = end - 1; i >= start; i--) {
      const c = b[i];
      if (c === 92 || c === 10 || c === 13 || c === 9) {
        b[--w] = c === 92 ? 92 : c === 10 ? 110 : c === 13 ? 114 : 116;
        b[--w] = 92;
      } else b[--w] = c;
    }
    this.pos = end + specials;
  }

  /** A whole line of COPY text, escaped already and ending with its newline. */
  line(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
    this.lineStart = this.pos;
    this.rows++;
  }

  /** Ends the current line (with its newline); `rollback` drops the unfinished line instead. */
  endLine(): void {
    this.byte(10);
    this.lineStart = this.pos;
    this.rows++;
  }

  rollback(): void {
    this.pos = this.lineStart;
  }

  /** Every finished line, in order; the sink is empty afterwards. */
  take(): Buffer[] {
    const out = [...this.done];
    if (this.lineStart > 0) out.push(this.buf.subarray(0, this.lineStart));
    this.done.length = 0;
    this.buf = NO_BYTES;
    this.pos = 0;
    this.lineStart = 0;
    this.rows = 0;
    return out;
  }
}

/** A read position in an Avro body. */
interface Cursor {
  buf: Buffer;
  pos: number;
}

function readLong(c: Cursor): number | bigint {
  const buf = c.buf;
  let n = 0;
  let shift = 1;
  for (let i = 0; ; i++) {
    const b = buf[c.pos++];
    n += (b & 0x7f) * shift;
    if (!(b & 0x80)) break;
    shift *= 128;
    // Seven bytes hold 49 bits, exact in a double; a longer varint goes on in BigInt.
    if (i === 6) return readLongBig(c, n, shift);
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** The rest of a varint longer than 7 bytes (beyond 2^49), exactly, as a BigInt. */
function readLongBig(c: Cursor, low: number, shift: number): bigint {
  let n = BigInt(low);
  let s = BigInt(shift);
  let b: number;
  do {
    b = c.buf[c.pos++];
    n += BigInt(b & 0x7f) * s;
    s *= 128n;
  } while (b & 0x80);
  return n & 1n ? -((n + 1n) >> 1n) : n >> 1n;
}

function readInt(c: Cursor): number {
  const n = Number(readLong(c));
  // A corrupt varint must not become a 20-digit "int" in the COPY text.
  if (n < -2147483648 || n > 2147483647) throw new RangeError('bad Avro int');
  return n;
}

function readLength(c: Cursor): number {
  const n = readInt(c);
  if (n < 0 || c.pos + n > c.buf.length) throw new RangeError('bad Avro length');
  return n;
}

type FieldReader = (c: Cursor, out: CopyTextSink) => void;

/**
 * The text of an Avro decimal of 1 to 6 bytes (big-endian two's complement) at `scale`, as
 * avro-mapping's bytesToDecimal prints it.
 */
function decimalText(buf: Buffer, at: number, n: number, scale: number): string {
  let v = buf[at] & 0x80 ? buf[at] - 256 : buf[at];
  for (let i = 1; i < n; i++) v = v * 256 + buf[at + i];
  const neg = v < 0;
  const digits = String(neg ? -v : v).padStart(scale + 1, '0');
  const out = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return neg ? `-${out}` : out;
}

/** Reads one branch (a non-union type) and writes its COPY text. */
function branchReader(schema: Record<string, unknown>): FieldReader {
  const conv = converterFor(schema as AvroSchema);
  const logical = schema.logicalType;
  switch (schema.type) {
    case 'null':
      return (_c, out) => out.ascii('\\N');
    case 'boolean':
      return (c, out) => out.byte(c.buf[c.pos++] ? 116 : 102);
    // The texts of dates, timestamps, floats and decimals are ASCII without a character COPY
    // escapes: written as they are (ascii), without text()'s UTF-8 encoding and escape scan.
    case 'int':
      if (logical === undefined) return (c, out) => out.int(readInt(c));
      return (c, out) => out.ascii(conv.fromAvro(readInt(c)));
    case 'long':
      if (logical === undefined) return (c, out) => out.int(readLong(c));
      return (c, out) => out.ascii(conv.fromAvro(BigInt(readLong(c))));
    case 'float':
      return (c, out) => {
        const v = c.buf.readFloatLE(c.pos);
        c.pos += 4;
        out.ascii(conv.fromAvro(v));
      };
    case 'double':
      return (c, out) => {
        const v = c.buf.readDoubleLE(c.pos);
        c.pos += 8;
        out.ascii(conv.fromAvro(v));
      };
    case 'bytes':
      if (logical === 'decimal') {
        const scale = (schema.scale as number | undefined) ?? 0;
        return (c, out) => {
          const n = readLength(c);
          // Up to 6 bytes (48 bits) is a safe integer: printed without a BigInt or a hex string.
          if (n >= 1 && n <= 6) out.ascii(decimalText(c.buf, c.pos, n, scale));
          else out.ascii(conv.fromAvro(c.buf.subarray(c.pos, c.pos + n)));
          c.pos += n;
        };
      }
      if (logical === undefined)
        // bytea: "\\x" and hex digits, as the converter's "\x..." text escaped for COPY.
        return (c, out) => {
          const n = readLength(c);
          out.byteaHex(c.buf, c.pos, c.pos + n);
          c.pos += n;
        };
      return (c, out) => {
        const n = readLength(c);
        out.text(conv.fromAvro(c.buf.subarray(c.pos, c.pos + n)));
        c.pos += n;
      };
    case 'string':
      return (c, out) => {
        const n = readLength(c);
        out.utf8(c.buf, c.pos, c.pos + n);
        c.pos += n;
      };
    default:
      throw new DataError(`no COPY reader for Avro type ${JSON.stringify(schema.type)}`);
  }
}

function fieldReader(type: AvroSchema): FieldReader {
  const norm = (t: unknown) => (typeof t === 'string' ? { type: t } : (t as Record<string, unknown>));
  if (!Array.isArray(type)) return branchReader(norm(type));
  const branches = type.map((t) => branchReader(norm(t)));
  return (c, out) => {
    const i = readInt(c);
    const r = branches[i];
    if (!r) throw new RangeError(`Avro union branch ${i} out of range`);
    r(c, out);
  };
}

/** What follows the "after" record: the same bytes for every row of a capture batch. */
interface Tail {
  bytes: Buffer;
  op: string;
}

export interface CopyPlan {
  /** Source column names in the writer's order. */
  columns: string[];
  /** null: the writer schema has a type this decoder does not read (RecordDecoder does). */
  fields: FieldReader[] | null;
  tailType: avro.Type | null;
  tail: Tail | null;
}

/**
 * Turns snapshot envelopes (op "r" or "c": no "before", an "after" record) straight into COPY
 * text lines, driven by the writer schema like RecordDecoder and printing exactly what
 * RecordDecoder plus copyLine print (table-codec.spec.ts compares them). Records it does
 * not handle (a "before" image) are left to RecordDecoder: `decodeInto` returns null.
 */
export class AvroCopyDecoder {
  private readonly plans = new Map<number, CopyPlan>();
  private readonly loading = new Map<number, Promise<CopyPlan>>();

  constructor(private readonly registry: Pick<RegistryClient, 'schema'>) {}

  /** The plan of a schema id, once it is loaded; `load` first when this is undefined. */
  ready(id: number): CopyPlan | undefined {
    return this.plans.get(id);
  }

  load(id: number): Promise<CopyPlan> {
    let p = this.loading.get(id);
    if (!p) {
      p = this.registry.schema(id).then((schema) => {
        const plan = planFor(id, schema);
        this.plans.set(id, plan);
        return plan;
      });
      p.catch(() => this.loading.delete(id));
      this.loading.set(id, p);
    }
    return p;
  }

  /**
   * Appends the record's "after" row as one COPY line and returns its op and columns, or
   * returns null (nothing appended) when the record has a "before" image. The plan of its
   * schema id must be loaded.
   */
  decodeInto(value: Buffer, out: CopyTextSink): { op: string; plan: CopyPlan } | null {
    return this.decodeRange(value, 0, value.length, out);
  }

  /** decodeInto of the value buf[start, end), without a Buffer for it. */
  decodeRange(
    buf: Buffer,
    start: number,
    end: number,
    out: CopyTextSink,
  ): { op: string; plan: CopyPlan } | null {
    if (end - start < 7 || buf[start] !== 0)
      throw new DataError(
        `not a Confluent wire-format Avro value (magic byte ${buf[start]}, length ${end - start})`,
      );
    const id = buf.readInt32BE(start + 1);
    const plan = this.plans.get(id);
    if (!plan) throw new RangeError(`schema ${id} is not loaded`);
    // before: null (branch 0); after: the record (branch 1).
    if (buf[start + 5] !== 0 || buf[start + 6] !== 2 || !plan.fields || !plan.tailType) return null;
    const c: Cursor = { buf, pos: start + 7 };
    const fields = plan.fields;
    const tailType = plan.tailType;
    try {
      for (let i = 0; i < fields.length; i++) {
        if (i) out.byte(9);
        fields[i](c, out);
      }
      if (c.pos > end) throw new RangeError('truncated Avro value');
    } catch (err) {
      out.rollback();
      throw new DataError(`undecodable Avro value with schema ${id}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    out.endLine();
    let tail = plan.tail;
    // Compared in place: no subarray per record.
    if (!tail || !sameTail(buf, c.pos, end, tail.bytes)) {
      const rest = tailType.fromBuffer(buf.subarray(c.pos, end)) as { op: string };
      tail = { bytes: Buffer.from(buf.subarray(c.pos, end)), op: rest.op };
      plan.tail = tail;
    }
    return { op: tail.op, plan };
  }
}

/** Whether value[from, end) is `tail`: a loop, which for these ~100 bytes costs less than Buffer#compare's call. */
function sameTail(value: Buffer, from: number, end: number, tail: Buffer): boolean {
  const n = tail.length;
  if (end - from !== n) return false;
  for (let i = 0; i < n; i++) if (value[from + i] !== tail[i]) return false;
  return true;
}

function planFor(id: number, schema: Record<string, unknown>): CopyPlan {
  const fields = schema.fields as Array<{ name: string; type: unknown }>;
  const before = fields[0];
  const value = Array.isArray(before?.type)
    ? (before.type.find((t) => typeof t === 'object') as
        { fields: Array<{ name: string; type: AvroSchema; 'pg.name'?: string }> } | undefined)
    : undefined;
  if (before?.name !== 'before' || fields[1]?.name !== 'after' || !value)
    throw new DataError(`schema ${id} is not a change envelope (no record in "before")`);
  let readers: FieldReader[] | null = null;
  let tailType: avro.Type | null = null;
  try {
    readers = value.fields.map((f) => fieldReader(f.type));
    tailType = avro.Type.forSchema(
      { type: 'record', name: 'Tail', namespace: 'pgferry.internal', fields: fields.slice(2) } as avro.Schema,
      avscOptions(),
    );
  } catch {
    readers = null;
  }
  return { columns: value.fields.map((f) => f['pg.name'] ?? f.name), fields: readers, tailType, tail: null };
}
