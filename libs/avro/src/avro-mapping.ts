import avro from 'avsc';
import type { ColumnInfo } from '@pgferry/pg';
import { dateToDays, daysToDate, microsToTimestamp, timestampToMicros } from '@pgferry/pg';

/**
 * PostgreSQL column -> Avro field, and the exact conversions between the column's text form
 * (as COPY prints it with DateStyle ISO, TimeZone UTC, bytea_output hex, extra_float_digits 3)
 * and the Avro value. Conversions back are driven by the writer schema alone (its Avro type,
 * logical type and the "pg.type" property), so any consumer can decode without our catalog.
 *
 *   bool -> boolean; int2, int4 -> int; int8, oid -> long (BigInt, exact); float4 -> float;
 *   float8 -> double; numeric(p,s) -> [decimal(p,s) bytes, string]; numeric -> string;
 *   date -> [int date, string]; timestamp -> [long local-timestamp-micros, string]: the string
 *   branch carries what the logical type cannot (NaN, infinity, -infinity, and timestamps past
 *   the year 294247, beyond 64-bit microseconds since 1970);
 *   timestamptz -> string "YYYY-MM-DD HH:MM:SS[.ffffff]+00" (UTC offset); uuid -> string uuid;
 *   bytea -> bytes; text, varchar, char, name -> string; anything else (arrays, json, jsonb,
 *   interval, network, geometric, ranges, enums, composites, ...) -> string in the type's text
 *   form with "pg.type" naming the type, cast back by the destination.
 */
export const BIGINT_LONG = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (v: unknown) => BigInt(v as string),
  toJSON: (n: bigint) => Number(n),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

/**
 * Options for avsc's Type.forSchema: every long (also written {"type": "long", ...}) decodes to
 * and encodes from a BigInt. A new object per call: avsc keeps its name registry in it.
 */
export const avscOptions = () => ({
  wrapUnions: false as const,
  typeHook: (schema: avro.Schema) =>
    schema === 'long' ||
    (typeof schema === 'object' && !Array.isArray(schema) && (schema as { type?: unknown }).type === 'long')
      ? BIGINT_LONG
      : undefined,
});

export type AvroSchema = Record<string, unknown> | string | Array<unknown>;

export function avroTypeFor(col: ColumnInfo): AvroSchema {
  const pg = { 'pg.type': col.type };
  switch (col.baseType) {
    case 'bool':
      return { type: 'boolean', ...pg };
    case 'int2':
    case 'int4':
      return { type: 'int', ...pg };
    case 'int8':
    case 'oid':
      return { type: 'long', ...pg };
    case 'float4':
      return { type: 'float', ...pg };
    case 'float8':
      return { type: 'double', ...pg };
    case 'numeric':
      return col.precision !== null
        ? [
            { type: 'bytes', logicalType: 'decimal', precision: col.precision, scale: col.scale, ...pg },
            { type: 'string', ...pg },
          ]
        : { type: 'string', ...pg };
    case 'date':
      return [
        { type: 'int', logicalType: 'date', ...pg },
        { type: 'string', ...pg },
      ];
    case 'timestamp':
      return [
        { type: 'long', logicalType: 'local-timestamp-micros', ...pg },
        { type: 'string', ...pg },
      ];
    case 'uuid':
      return { type: 'string', logicalType: 'uuid', ...pg };
    case 'bytea':
      return { type: 'bytes', ...pg };
    default:
      return { type: 'string', ...pg };
  }
}

function floatIn(t: string): number {
  return t === 'NaN' ? NaN : t === 'Infinity' ? Infinity : t === '-Infinity' ? -Infinity : Number(t);
}

function floatOut(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return Object.is(v, -0) ? '-0' : String(v);
}

function decimalToBytes(text: string, scale: number): Buffer {
  const neg = text.startsWith('-');
  const [int, frac = ''] = (neg ? text.slice(1) : text).split('.');
  let n = BigInt(int + frac.padEnd(scale, '0').slice(0, scale));
  if (neg) n = -n;
  let hex = (n < 0n ? (1n << BigInt(8 * byteLen(n))) + n : n).toString(16);
  const len = byteLen(n);
  hex = hex.padStart(len * 2, n < 0n ? 'f' : '0');
  return Buffer.from(hex, 'hex');
}

function byteLen(n: bigint): number {
  let len = 1;
  while (n >= 1n << BigInt(8 * len - 1) || n < -(1n << BigInt(8 * len - 1))) len++;
  return len;
}

function bytesToDecimal(buf: Buffer, scale: number): string {
  if (buf.length === 0) return scale ? `0.${'0'.repeat(scale)}` : '0';
  let n = BigInt(`0x${buf.toString('hex')}`);
  if (buf[0] & 0x80) n -= 1n << BigInt(8 * buf.length);
  const neg = n < 0n;
  const digits = (neg ? -n : n).toString().padStart(scale + 1, '0');
  const out = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return neg ? `-${out}` : out;
}

type Conv = { toAvro: (text: string) => unknown; fromAvro: (value: unknown) => string };

const identity: Conv = { toAvro: (t) => t, fromAvro: (v) => v as string };

function primitiveConv(schema: Record<string, unknown>, scaleHint?: number): Conv {
  const logical = schema.logicalType;
  switch (schema.type) {
    case 'boolean':
      return { toAvro: (t) => t === 't', fromAvro: (v) => (v ? 't' : 'f') };
    case 'int':
      if (logical === 'date') return { toAvro: dateToDays, fromAvro: (v) => daysToDate(v as number) };
      return { toAvro: (t) => Number(t), fromAvro: (v) => String(v) };
    case 'long':
      if (logical === 'local-timestamp-micros')
        return { toAvro: timestampToMicros, fromAvro: (v) => microsToTimestamp(v as bigint) };
      return { toAvro: (t) => BigInt(t), fromAvro: (v) => String(v) };
    case 'float':
    case 'double':
      return { toAvro: floatIn, fromAvro: (v) => floatOut(v as number) };
    case 'bytes':
      if (logical === 'decimal') {
        const scale = (schema.scale as number | undefined) ?? scaleHint ?? 0;
        return {
          toAvro: (t) => decimalToBytes(t, scale),
          fromAvro: (v) => bytesToDecimal(v as Buffer, scale),
        };
      }
      return {
        toAvro: (t) => Buffer.from(t.slice(2), 'hex'),
        fromAvro: (v) => `\\x${(v as Buffer).toString('hex')}`,
      };
    default:
      return identity;
  }
}

/**
 * Conversions for a field's (non-null) Avro type. A [decimal, string] union sends finite values
 * as decimal and NaN as the string branch.
 */
export function converterFor(type: AvroSchema): Conv {
  if (Array.isArray(type)) {
    const branches = type.filter((b) => b !== 'null' && (b as { type?: string }).type !== 'null') as Record<
      string,
      unknown
    >[];
    if (branches.length === 1) return converterFor(branches[0]);
    const main = branches.find((b) => b.type !== 'string');
    if (main && branches.some((b) => b.type === 'string')) {
      const d = primitiveConv(main);
      // A long's two extremes stand for -infinity and infinity (microsToTimestamp), so a real
      // timestamp at one of them (294247-01-10 04:00:54.775807) travels as its text.
      const fits =
        main.type === 'long'
          ? (v: unknown) => (v as bigint) > -(2n ** 63n) && (v as bigint) < 2n ** 63n - 1n
          : () => true;
      return {
        toAvro: (t) => {
          if (t === 'NaN' || t.endsWith('infinity') || t.endsWith('Infinity')) return t;
          const v = d.toAvro(t);
          return fits(v) ? v : t;
        },
        fromAvro: (v) => (typeof v === 'string' ? v : d.fromAvro(v)),
      };
    }
    return identity;
  }
  if (typeof type === 'string') return primitiveConv({ type });
  return primitiveConv(type);
}
