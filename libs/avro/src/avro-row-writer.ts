import type { ColumnInfo } from '@pgferry/pg';
import { avroTypeFor, converterFor, type AvroSchema } from './avro-mapping';
import { AvroSlab, BACKSLASH } from './avro-slab';
import * as core from '@pgferry/core';

// Bound once: TypeScript's CommonJS output reads another package's export through a getter on
// its index, a lookup per use that V8 does not inline; on this per-byte path that cost 0.26 s of
// the capture's 7 cpu-s (npm run bench -- full, cpu profile).
const { byteView, SMALL_COPY } = core;

/*
 * One writer per column from COPY text straight to Avro binary in an AvroSlab: the snapshot's
 * hot path. The bytes are avsc's for the same schema and values (table-codec.spec.ts compares).
 */

/**
 * Writes one non-NULL COPY text field [start, end) of `line`; `text` unescapes it on demand
 * (most fields have no escape and are copied as bytes).
 */
export type FieldWriter = (out: AvroSlab, line: Buffer, start: number, end: number) => void;

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
