import { compareBytes, DataError } from '@pgferry/core';
import avro from 'avsc';
import { avscOptions, converterFor, type AvroSchema } from './avro-mapping';
import { decimalText, readInt, readLength, readLong, type Cursor } from './avro-cursor';
import { envelopeSchema } from './table-schemas';

/*
 * The applier's hot path for change records: an envelope read straight from its bytes into
 * PostgreSQL texts, without avsc's record objects (avsc's decoding and the garbage it left were
 * about a third of the per-key applier's CPU under pgbench). Only for writer schemas whose
 * envelope is exactly the one buildSchemas writes (checked once per schema); RecordDecoder reads
 * any other through avsc. The texts are the mapping's converters' (fromAvro), as avsc's path
 * gives them (change-reader.spec.ts compares the two).
 */

/** A change record as the appliers read it: PostgreSQL texts in the writer's column order. */
export interface DecodedChange {
  op: 'r' | 'c' | 'u' | 'd' | 't';
  /** Source column names in the writer's order. */
  columns: string[];
  before: Array<string | null> | null;
  after: Array<string | null> | null;
  /** Columns whose TOASTed value the source did not send (unchanged by the UPDATE). */
  unchangedToast: string[];
  source: { schema: string; table: string; lsn: bigint | null; snapshot: string | null };
}

/** Reads one non-null value and gives its PostgreSQL text; null for an Avro null. */
type TextReader = (c: Cursor) => string | null;

function readString(c: Cursor): string {
  const n = readLength(c);
  const s = c.buf.toString('utf8', c.pos, c.pos + n);
  c.pos += n;
  return s;
}

/** An Avro string that repeats from record to record: the last one's string while its bytes are the same. */
class RepeatedString {
  private bytes: Buffer = Buffer.alloc(0);
  private text = '';

  read(c: Cursor): string {
    const n = readLength(c);
    const at = c.pos;
    c.pos += n;
    if (n !== this.bytes.length || compareBytes(c.buf, at, this.bytes, 0, n) !== 0) {
      this.bytes = Buffer.from(c.buf.subarray(at, at + n));
      this.text = c.buf.toString('utf8', at, at + n);
    }
    return this.text;
  }
}

/** The envelope's op, one of c, u, d, r, t (a one-byte string), without a new string per record. */
const OPS = new Map(['c', 'u', 'd', 'r', 't'].map((op) => [op.charCodeAt(0), op]));

function readOp(c: Cursor): string {
  if (c.buf[c.pos] === 2) {
    const op = OPS.get(c.buf[c.pos + 1]);
    if (op !== undefined) {
      c.pos += 2;
      return op;
    }
  }
  return readString(c);
}

function skipString(c: Cursor): void {
  // Not `c.pos += readLength(c)`: that adds to the position from before the length was read.
  const n = readLength(c);
  c.pos += n;
}

function branchReader(schema: Record<string, unknown>): TextReader | null {
  const conv = converterFor(schema as AvroSchema);
  const logical = schema.logicalType;
  switch (schema.type) {
    case 'null':
      return () => null;
    case 'boolean':
      return (c) => (c.buf[c.pos++] ? 't' : 'f');
    case 'int':
      if (logical === undefined) return (c) => String(readInt(c));
      return (c) => conv.fromAvro(readInt(c));
    case 'long':
      if (logical === undefined) return (c) => String(readLong(c));
      return (c) => conv.fromAvro(BigInt(readLong(c)));
    case 'float':
      return (c) => {
        const v = c.buf.readFloatLE(c.pos);
        c.pos += 4;
        return conv.fromAvro(v);
      };
    case 'double':
      return (c) => {
        const v = c.buf.readDoubleLE(c.pos);
        c.pos += 8;
        return conv.fromAvro(v);
      };
    case 'bytes': {
      const scale = (schema.scale as number | undefined) ?? 0;
      return (c) => {
        const n = readLength(c);
        const at = c.pos;
        c.pos += n;
        // Up to 6 bytes (48 bits) is a safe integer: printed without a BigInt or a hex string.
        if (logical === 'decimal' && n >= 1 && n <= 6) return decimalText(c.buf, at, n, scale);
        return conv.fromAvro(c.buf.subarray(at, at + n));
      };
    }
    case 'string':
      return readString;
    default:
      return null;
  }
}

function textReader(type: AvroSchema): TextReader | null {
  const norm = (t: unknown) => (typeof t === 'string' ? { type: t } : (t as Record<string, unknown>));
  if (!Array.isArray(type)) return branchReader(norm(type));
  const branches = type.map((t) => branchReader(norm(t)));
  if (branches.some((b) => b === null)) return null;
  return (c) => {
    const i = readInt(c);
    const r = branches[i];
    if (!r) throw new DataError(`Avro union branch ${i} is not in the schema (${branches.length} branches)`);
    return r(c);
  };
}

interface ValueField {
  name: string;
  type: AvroSchema;
  'pg.name'?: string;
}

/**
 * The reader of envelopes of `schema` (parsed by avsc as `type`), or null when the envelope is
 * not the one buildSchemas writes or a column's type has no text reader here (RecordDecoder then
 * uses avsc). The layout check is by Parsing Canonical Form: the writer's envelope must be
 * envelopeSchema() around its own Value record, whatever the registry's spelling of the text.
 */
export function changeReader(
  schema: Record<string, unknown>,
  type: avro.Type,
): ((buf: Buffer, start?: number, end?: number) => DecodedChange) | null {
  if (!(type instanceof avro.types.RecordType)) return null;
  const beforeType = type.field('before')?.type;
  if (!(
    beforeType instanceof avro.types.UnwrappedUnionType || beforeType instanceof avro.types.WrappedUnionType
  ))
    return null;
  const valueType = beforeType.types[1];
  const fullName = valueType?.name;
  if (!fullName || !fullName.endsWith('.Value')) return null;
  const beforeField = (schema.fields as Array<{ name: string; type: unknown }>).find(
    (f) => f.name === 'before',
  );
  const value = Array.isArray(beforeField?.type) ? (beforeField.type[1] as Record<string, unknown>) : null;
  if (!value || typeof value !== 'object' || !Array.isArray(value.fields)) return null;
  const namespace = fullName.slice(0, -'.Value'.length);
  const expected = avro.Type.forSchema(
    envelopeSchema(namespace, { ...value, name: 'Value', namespace }) as avro.Schema,
    avscOptions(),
  );
  if (!expected.fingerprint().equals(type.fingerprint())) return null;
  const valueFields = value.fields as ValueField[];
  const readers = valueFields.map((f) => textReader(f.type));
  if (readers.some((r) => r === null)) return null;
  const read = readers as TextReader[];
  const columns = valueFields.map((f) => f['pg.name'] ?? f.name);
  const image = (c: Cursor): Array<string | null> | null => {
    const branch = c.buf[c.pos++];
    if (branch === 0) return null;
    if (branch !== 2) throw new DataError(`Avro union branch byte ${branch} is not in the schema (0 or 2)`);
    const texts = new Array<string | null>(read.length);
    for (let i = 0; i < read.length; i++) texts[i] = read[i](c);
    return texts;
  };
  /** A [null, long] union: index 0 null, 1 (zigzag 2) then the long. */
  const nullableLong = (c: Cursor): number | bigint | null => {
    const branch = c.buf[c.pos++];
    if (branch === 0) return null;
    if (branch !== 2) throw new DataError(`Avro union branch byte ${branch} is not in the schema (0 or 2)`);
    return readLong(c);
  };
  // The source schema and table of a topic's records are nearly always the same: their string
  // is made again only when their bytes differ from the last record's (the applier reads them
  // for every change).
  const schemaText = new RepeatedString();
  const tableText = new RepeatedString();
  return (buf, start = 0, end = buf.length) => {
    const c: Cursor = { buf, pos: start, start, end };
    const beforeTexts = image(c);
    const afterTexts = image(c);
    skipString(c); // version
    skipString(c); // connector
    skipString(c); // name
    readLong(c); // ts_ms
    const snapshotBranch = c.buf[c.pos++];
    const snapshot = snapshotBranch === 0 ? readString(c) : null;
    if (snapshotBranch !== 0 && snapshotBranch !== 2)
      throw new DataError(`Avro union branch byte ${snapshotBranch} is not in the schema (0 or 2)`);
    skipString(c); // db
    const sequenceBranch = c.buf[c.pos++];
    if (sequenceBranch === 2) skipString(c);
    else if (sequenceBranch !== 0)
      throw new DataError(`Avro union branch byte ${sequenceBranch} is not in the schema (0 or 2)`);
    const schemaName = schemaText.read(c);
    const table = tableText.read(c);
    nullableLong(c); // txId
    const lsn = nullableLong(c);
    nullableLong(c); // xmin
    const opText = readOp(c);
    nullableLong(c); // ts_ms
    const tx = c.buf[c.pos++];
    if (tx === 2) {
      skipString(c);
      readLong(c);
      readLong(c);
    } else if (tx !== 0) throw new DataError(`Avro union branch byte ${tx} is not in the schema (0 or 2)`);
    const unchangedToast: string[] = [];
    for (;;) {
      let n = readLong(c) as number;
      if (n === 0) break;
      if (n < 0) {
        // A negative count is followed by the block's size in bytes.
        n = -n;
        readLong(c);
      }
      for (let i = 0; i < n; i++) unchangedToast.push(readString(c));
    }
    if (c.pos !== end)
      throw new DataError(c.pos > end ? 'the value is truncated' : `${end - c.pos} bytes follow the value`);
    return {
      op: opText as DecodedChange['op'],
      columns,
      before: beforeTexts,
      after: afterTexts,
      unchangedToast,
      source: {
        schema: schemaName,
        table,
        lsn: lsn === null ? null : BigInt(lsn),
        snapshot,
      },
    };
  };
}
