import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { avscOptions, converterFor, type AvroSchema } from './avro-mapping';
import type { RegistryClient } from './registry-client';
import { decimalText, readInt, readLength, readLong, type Cursor } from './avro-cursor';
import { binaryFieldWriter, type BinaryWriter } from './avro-binary-fields';
import type { CopyBinarySink } from '@pgferry/pg';
import { CopyTextSink } from '@pgferry/pg';
import { requireWireSchemaId } from './confluent-wire';

export { CopyTextSink };

type FieldReader = (c: Cursor, out: CopyTextSink) => void;

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
    if (!r) throw new DataError(`Avro union branch ${i} is not in the schema (${branches.length} branches)`);
    r(c, out);
  };
}

/** What follows the "after" record: the same bytes for every row of a capture batch. */
interface Tail {
  bytes: Buffer;
  op: string;
}

export interface CopyPlan {
  /** The writer schema id. */
  id: number;
  /** Source column names in the writer's order. */
  columns: string[];
  /** null: the writer schema has a type this decoder does not read (RecordDecoder does). */
  fields: FieldReader[] | null;
  tailType: avro.Type | null;
  tail: Tail | null;
  /** The Avro value fields, for binaryWriters. */
  valueFields: Array<{ name: string; type: AvroSchema; 'pg.name'?: string }>;
  /** binaryWriters' answers by destination. */
  binary: Map<string, BinaryWriter[] | null>;
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
    const plan = this.planOf(buf, start, end);
    // before: null (branch 0); after: the record (branch 1).
    if (buf[start + 5] !== 0 || buf[start + 6] !== 2 || !plan.fields || !plan.tailType) return null;
    const c: Cursor = { buf, pos: start + 7, start, end };
    const fields = plan.fields;
    let op: string;
    try {
      for (let i = 0; i < fields.length; i++) {
        if (i) out.byte(9);
        fields[i](c, out);
      }
      if (c.pos > end) throw new DataError('truncated Avro value');
      // Before the line is ended: a value whose tail does not decode leaves nothing behind.
      op = tailOp(plan, buf, c.pos, end);
    } catch (err) {
      out.rollback();
      throw undecodable(plan, err);
    }
    out.endLine();
    return { op, plan };
  }

  /**
   * The COPY binary writers of a loaded schema id's value fields for a destination table whose
   * column type OIDs are `types` (by name), or null when some column must go as text (its type
   * has no binary writer, or the destination's type differs). Cached per `destination`, a name
   * of the table the caller keeps `types` of.
   */
  binaryWriters(id: number, destination: string, types: ReadonlyMap<string, number>): BinaryWriter[] | null {
    const plan = this.plans.get(id);
    // The caller's contract (load first): only a pgferry bug breaks it.
    if (!plan) throw new RangeError(`schema ${id} is not loaded`);
    let writers = plan.binary.get(destination);
    if (writers === undefined) {
      writers = [];
      for (const f of plan.valueFields) {
        const w = binaryFieldWriter(f.type, types.get(f['pg.name'] ?? f.name));
        if (!w) {
          writers = null;
          break;
        }
        writers.push(w);
      }
      if (!plan.fields || !plan.tailType) writers = null;
      plan.binary.set(destination, writers);
    }
    return writers;
  }

  /**
   * Appends the record's "after" row as one COPY binary tuple through `writers` (binaryWriters
   * of its schema id) and returns its op and columns, or returns null with nothing appended: the
   * record has a "before" image, or a value the binary writers do not carry exactly.
   */
  decodeBinaryRange(
    buf: Buffer,
    start: number,
    end: number,
    out: CopyBinarySink,
    writers: readonly BinaryWriter[],
  ): { op: string; plan: CopyPlan } | null {
    const plan = this.planOf(buf, start, end);
    if (buf[start + 5] !== 0 || buf[start + 6] !== 2 || !plan.tailType) return null;
    const c: Cursor = { buf, pos: start + 7, start, end };
    let op: string;
    try {
      out.beginRow(writers.length);
      for (let i = 0; i < writers.length; i++)
        if (!writers[i](c, out)) {
          out.rollback();
          return null;
        }
      if (c.pos > end) throw new DataError('truncated Avro value');
      op = tailOp(plan, buf, c.pos, end);
    } catch (err) {
      out.rollback();
      throw undecodable(plan, err);
    }
    out.endRow();
    return { op, plan };
  }

  /** The loaded plan of the wire-format value buf[start, end). */
  private planOf(buf: Buffer, start: number, end: number): CopyPlan {
    const id = requireWireSchemaId(buf, start, end);
    const plan = this.plans.get(id);
    // The caller's contract (load first): only a pgferry bug breaks it.
    if (!plan) throw new RangeError(`schema ${id} is not loaded`);
    return plan;
  }
}

/** A value the readers refused (a DataError) or broke on: bytes that are not its schema's. */
function undecodable(plan: CopyPlan, err: unknown): DataError {
  return new DataError(
    `Avro value of schema ${plan.id} does not decode (${(err as Error).message}): the record is corrupt, or was not written with that schema`,
    { cause: err },
  );
}

/** The op of the record whose fields after "after" are buf[pos, end). */
function tailOp(plan: CopyPlan, buf: Buffer, pos: number, end: number): string {
  let tail = plan.tail;
  // Compared in place: no subarray per record.
  if (!tail || !sameTail(buf, pos, end, tail.bytes)) {
    const rest = plan.tailType!.fromBuffer(buf.subarray(pos, end)) as { op: string };
    tail = { bytes: Buffer.from(buf.subarray(pos, end)), op: rest.op };
    plan.tail = tail;
  }
  return tail.op;
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
  return {
    id,
    columns: value.fields.map((f) => f['pg.name'] ?? f.name),
    fields: readers,
    tailType,
    tail: null,
    valueFields: value.fields,
    binary: new Map(),
  };
}
