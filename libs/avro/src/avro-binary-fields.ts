import { DataError } from '@pgferry/core';
import { converterFor, type AvroSchema } from './avro-mapping';
import { readInt, readLength, readSafeLong, type Cursor } from './avro-cursor';
import type { CopyBinarySink } from '@pgferry/pg';

/**
 * Reads one Avro field and writes its COPY binary field. Returns false when the value is not
 * one the binary form can carry exactly (the batch then goes as COPY text); what it wrote then
 * is dropped with the tuple.
 */
export type BinaryWriter = (c: Cursor, out: CopyBinarySink) => boolean;

type Kind =
  | 'bool'
  | 'int2'
  | 'int4'
  | 'int8'
  | 'oid'
  | 'float4'
  | 'float8'
  | 'numeric'
  | 'text'
  | 'jsonb'
  | 'bytea'
  | 'uuid'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'array';

/** A source type with a binary writer: its kind, the destination column's type OID it needs, and an array's element type OID. */
interface BinaryType {
  kind: Kind;
  oid: number;
  element?: number;
}

/** By format_type name without type modifiers (the writer schema's "pg.type"); OIDs from pg_type.dat. */
const BINARY_TYPES: Record<string, BinaryType> = {
  boolean: { kind: 'bool', oid: 16 },
  smallint: { kind: 'int2', oid: 21 },
  integer: { kind: 'int4', oid: 23 },
  bigint: { kind: 'int8', oid: 20 },
  oid: { kind: 'oid', oid: 26 },
  real: { kind: 'float4', oid: 700 },
  'double precision': { kind: 'float8', oid: 701 },
  numeric: { kind: 'numeric', oid: 1700 },
  text: { kind: 'text', oid: 25 },
  'character varying': { kind: 'text', oid: 1043 },
  // bpchar_recv pads to the destination's typmod, as bpcharin does.
  character: { kind: 'text', oid: 1042 },
  bpchar: { kind: 'text', oid: 1042 },
  name: { kind: 'text', oid: 19 },
  json: { kind: 'text', oid: 114 },
  jsonb: { kind: 'jsonb', oid: 3802 },
  bytea: { kind: 'bytea', oid: 17 },
  uuid: { kind: 'uuid', oid: 2950 },
  date: { kind: 'date', oid: 1082 },
  'timestamp without time zone': { kind: 'timestamp', oid: 1114 },
  'timestamp with time zone': { kind: 'timestamptz', oid: 1184 },
  'text[]': { kind: 'array', oid: 1009, element: 25 },
  'character varying[]': { kind: 'array', oid: 1015, element: 1043 },
  'character[]': { kind: 'array', oid: 1014, element: 1042 },
  'bpchar[]': { kind: 'array', oid: 1014, element: 1042 },
};
// The internal names too, which a writer schema may carry instead of format_type's; a
// user-defined type of the same name has another OID, which the destination check refuses.
for (const [alias, name] of [
  ['bool', 'boolean'],
  ['int2', 'smallint'],
  ['int4', 'integer'],
  ['int8', 'bigint'],
  ['float4', 'real'],
  ['float8', 'double precision'],
  ['varchar', 'character varying'],
  ['timestamp', 'timestamp without time zone'],
  ['timestamptz', 'timestamp with time zone'],
  ['_text', 'text[]'],
  ['_varchar', 'character varying[]'],
  ['_bpchar', 'character[]'],
])
  BINARY_TYPES[alias] = BINARY_TYPES[name];

/**
 * A format_type name without its type modifiers: "numeric(14,2)" -> "numeric",
 * "timestamp(3) with time zone" -> "timestamp with time zone", "character varying(20)[]" ->
 * "character varying[]".
 */
export function unmodifiedTypeName(pgType: string): string {
  return pgType.replace(/\(\d+(?:,\d+)?\)(?=$| |\[)/g, '');
}

/** The destination type OID a column of this "pg.type" needs to be sent in binary, if any. */
export function binaryTypeOid(pgType: string): number | undefined {
  return BINARY_TYPES[unmodifiedTypeName(pgType)]?.oid;
}

type Branch = Record<string, unknown>;

function branchWriter(t: BinaryType, b: Branch): BinaryWriter | null {
  const type = b.type;
  const logical = b.logicalType;
  const plain = logical === undefined;
  switch (t.kind) {
    case 'bool':
      if (type !== 'boolean') return null;
      return (c, out) => {
        out.bool(c.buf[c.pos++] !== 0);
        return true;
      };
    case 'int2':
      return type === 'int' && plain ? (c, out) => out.int2(readInt(c)) : null;
    case 'int4':
      if (type !== 'int' || !plain) return null;
      return (c, out) => {
        out.int4(readInt(c));
        return true;
      };
    case 'int8':
      if (type !== 'long' || !plain) return null;
      return (c, out) => {
        out.int8(readSafeLong(c));
        return true;
      };
    case 'oid':
      return type === 'long' && plain ? (c, out) => out.oid(readSafeLong(c)) : null;
    case 'float4':
    case 'float8': {
      const n = t.kind === 'float4' ? 4 : 8;
      if (type !== (n === 4 ? 'float' : 'double')) return null;
      return (c, out) => {
        out.floatLE(c.buf, c.pos, n);
        c.pos += n;
        return true;
      };
    }
    case 'numeric':
      if (type === 'string') return stringWriter((out, s, a, z) => out.numericText(s, a, z));
      if (type === 'bytes' && logical === 'decimal') {
        const scale = (b.scale as number | undefined) ?? 0;
        const conv = converterFor(b as AvroSchema);
        return (c, out) => {
          const n = readLength(c);
          const at = c.pos;
          c.pos += n;
          // Up to 6 bytes (48 bits) is a safe integer; longer ones go through their text.
          if (n <= 6) return out.numericDecimal(c.buf, at, n, scale);
          const text = Buffer.from(conv.fromAvro(c.buf.subarray(at, at + n)), 'latin1');
          return out.numericText(text, 0, text.length);
        };
      }
      return null;
    case 'text':
      if (type !== 'string') return null;
      return stringWriter((out, s, a, z) => {
        out.bytes(s, a, z);
        return true;
      });
    case 'jsonb':
      if (type !== 'string') return null;
      return stringWriter((out, s, a, z) => {
        out.jsonb(s, a, z);
        return true;
      });
    case 'bytea':
      if (type !== 'bytes' || !plain) return null;
      return stringWriter((out, s, a, z) => {
        out.bytes(s, a, z);
        return true;
      });
    case 'uuid':
      return type === 'string' ? stringWriter((out, s, a, z) => out.uuid(s, a, z)) : null;
    case 'date':
      if (type === 'int' && logical === 'date') return (c, out) => out.date(readInt(c));
      return type === 'string' ? stringWriter((out, s, a, z) => out.dateText(s, a, z)) : null;
    case 'timestamp':
      if (type === 'long' && logical === 'local-timestamp-micros')
        return (c, out) => out.timestamp(readSafeLong(c));
      return type === 'string' ? stringWriter((out, s, a, z) => out.timestampInfinity(s, a, z)) : null;
    case 'timestamptz':
      return type === 'string' ? stringWriter((out, s, a, z) => out.timestamptz(s, a, z)) : null;
    case 'array': {
      const element = t.element!;
      return type === 'string' ? stringWriter((out, s, a, z) => out.textArray(s, a, z, element)) : null;
    }
  }
}

/** A writer of an Avro string or bytes value: `write` gets its bytes in place. */
function stringWriter(
  write: (out: CopyBinarySink, src: Buffer, start: number, end: number) => boolean,
): BinaryWriter {
  return (c, out) => {
    const n = readLength(c);
    const at = c.pos;
    c.pos += n;
    return write(out, c.buf, at, at + n);
  };
}

const nullWriter: BinaryWriter = (_c, out) => {
  out.nul();
  return true;
};

/**
 * The binary writer of a value field, when its source type ("pg.type") has one, the destination
 * column's type is that same type (`destOid`: binary receive functions do not convert), and
 * every branch of its Avro type is one the writer reads; otherwise null (the column goes as text).
 */
export function binaryFieldWriter(type: AvroSchema, destOid: number | undefined): BinaryWriter | null {
  const branches = (Array.isArray(type) ? type : [type]).map((t) =>
    typeof t === 'string' ? { type: t } : (t as Branch),
  );
  const pgType = branches.find((b) => b.type !== 'null')?.['pg.type'];
  if (typeof pgType !== 'string') return null;
  const t = BINARY_TYPES[unmodifiedTypeName(pgType)];
  if (!t || t.oid !== destOid) return null;
  const writers: BinaryWriter[] = [];
  for (const b of branches) {
    const w = b.type === 'null' ? nullWriter : branchWriter(t, b);
    if (!w) return null;
    writers.push(w);
  }
  if (!Array.isArray(type)) return writers[0];
  if (writers.length === 2 && writers[0] === nullWriter) {
    const w = writers[1];
    return (c, out) => {
      const i = c.buf[c.pos++];
      if (i === 0) return nullWriter(c, out);
      if (i === 2) return w(c, out);
      throw new DataError(`Avro union branch byte ${i} is not in the schema (0 or 2)`);
    };
  }
  return (c, out) => {
    const i = readInt(c);
    const w = writers[i];
    if (!w) throw new DataError(`Avro union branch ${i} is not in the schema (${writers.length} branches)`);
    return w(c, out);
  };
}
