import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { quoteQualified, type ColumnInfo } from '@pgferry/pg';
import { avscOptions, avroTypeFor, type AvroSchema } from './avro-mapping';
import { fieldWriter, type FieldWriter } from './avro-row-writer';
import { AvroSlab } from './avro-slab';
import { keyIndexes, type SourceInfo, type TableSchemas } from './table-schemas';
import { WIRE_HEADER_BYTES, writeWireHeader } from './confluent-wire';

/**
 * Debezium's marker for a value the source did not send (a TOASTed column an UPDATE left
 * unchanged). pgferry lists such columns in `pgferry_unchanged_toast` as well, and uses the
 * marker only where the field cannot be null, so Debezium-aware consumers recognise it.
 */
export const UNAVAILABLE_VALUE = '__debezium_unavailable_value';

export type ChangeOp = 'c' | 'u' | 'd';

/** Where a change sits in the source's history, for the envelope's `source` and `transaction`. */
export interface ChangeMeta {
  /** LSN of the change (Debezium: the record's position). */
  lsn: bigint;
  txId: number | null;
  /** Commit time of the transaction, ms since 1970. */
  tsMs: number;
  /** Transaction id text for the `transaction` block, and the change's order in it. */
  transaction?: { id: string; totalOrder: number; dataCollectionOrder: number };
}

/**
 * A value of an Avro type that stands for "not sent": null where the type allows it, else the
 * Debezium marker for strings and bytes, else the type's zero. Only ever read together with the
 * column list that says it is not real.
 */
export function placeholderFor(type: AvroSchema): unknown {
  if (Array.isArray(type)) {
    if (type.some((b) => b === 'null' || (b as { type?: string }).type === 'null')) return null;
    const text = type.find((b) => b === 'string' || (b as { type?: string }).type === 'string');
    return placeholderFor((text ?? type[0]) as AvroSchema);
  }
  const t = typeof type === 'string' ? type : (type.type as string);
  const logical = typeof type === 'object' ? type.logicalType : undefined;
  switch (t) {
    case 'string':
      return UNAVAILABLE_VALUE;
    case 'bytes':
      return logical === 'decimal' ? Buffer.alloc(1) : Buffer.from(UNAVAILABLE_VALUE);
    case 'int':
    case 'float':
    case 'double':
      return 0;
    case 'long':
      return 0n;
    case 'boolean':
      return false;
    case 'array':
      return [];
    default:
      return null;
  }
}

/** pgoutput's text values are the types' output texts, without COPY's escapes. */
const rawText = (buf: Buffer, start: number, end: number) => buf.toString('utf8', start, end);

/** Writes a non-NULL text value of one field straight from the JS string. */
type TextWriter = (out: AvroSlab, text: string) => void;

/**
 * A writer from the string itself for the types whose text is their value or a plain integer
 * (text, varchar, char, uuid, json, int2/4/8, oid, bool: most columns), or null: the others go
 * through the snapshot's field writer from the value's UTF-8 bytes. The bytes are the same
 * (change-encoder.spec.ts compares both with avsc).
 */
function textWriter(col: ColumnInfo, nullable: boolean): TextWriter | null {
  const type = avroTypeFor(col);
  const branches = (Array.isArray(type) ? type : [type]) as Array<string | Record<string, unknown>>;
  if (branches.length !== 1) return null;
  const t = typeof branches[0] === 'string' ? { type: branches[0] } : branches[0];
  const index = nullable ? (out: AvroSlab) => out.byte(2) : () => undefined;
  switch (t.type) {
    case 'string':
      return (out, text) => {
        index(out);
        out.string(text);
      };
    case 'int':
      if (t.logicalType !== undefined) return null;
      return (out, text) => {
        index(out);
        out.int(Number(text));
      };
    case 'long':
      if (t.logicalType !== undefined) return null;
      // Up to 15 characters is below 2^53 as a number; longer texts go through BigInt.
      return (out, text) => {
        index(out);
        out.long(text.length <= 15 ? Number(text) : BigInt(text));
      };
    case 'boolean':
      return (out, text) => {
        index(out);
        out.byte(text === 't' ? 1 : 0);
      };
    default:
      return null;
  }
}

/** The Avro binary of `value` as one field of type `type` (placeholders, once per column). */
function fieldBytes(type: AvroSchema, value: unknown): Buffer {
  return avro.Type.forSchema(type as avro.Schema, avscOptions()).toBuffer(value);
}

/**
 * The slab every ChangeEncoder of the process writes into: one 1 MB buffer at a time for all
 * tables, not one per table (a source with thousands of tables would hold a slab each). Safe
 * to share: an encode runs start to end without yielding.
 */
let shared: AvroSlab | null = null;
/** Each value's UTF-8 bytes, for the field writers (shared the same way); grows with the widest. */
let scratch = Buffer.allocUnsafe(4096);

/** A string's Avro bytes: length, then UTF-8. */
function avroString(s: string): Buffer {
  const out = new AvroSlab(Buffer.byteLength(s) + 10);
  out.string(s);
  return out.end();
}

/** A long's Avro bytes (zigzag varint). */
function avroLong(n: number): Buffer {
  const out = new AvroSlab(10);
  out.long(n);
  return out.end();
}

/**
 * The Avro bytes of the value written last, made again only when the value changes: a
 * transaction's changes share its id and commit time, and changes written within the same
 * millisecond share ts_ms, so the tail of most records is copied, not encoded (a 41-bit long
 * is six divisions; a string is a UTF-8 pass and a native call).
 */
class LastBytes<T> {
  private value: T | undefined;
  private bytes: Buffer = Buffer.alloc(0);

  constructor(private readonly encode: (v: T) => Buffer) {}

  of(v: T): Buffer {
    if (v !== this.value) {
      this.bytes = this.encode(v);
      this.value = v;
    }
    return this.bytes;
  }
}

/** Shared by every encoder of the process, like the slab: a transaction spans tables. */
const lastTxId = new LastBytes(avroString);
const lastTsMs = new LastBytes(avroLong);
const lastNow = new LastBytes(avroLong);

/**
 * Encodes the streamed changes of one table (op c, u, d and truncate) into the same envelope and
 * schema ids as its snapshot rows, in the Confluent wire format. Values are the PostgreSQL text
 * forms pgoutput sends, in table column order; null for SQL NULL.
 *
 * - c: after only. u: after, and before when the source logged an old tuple (key change, or
 *   replica identity full). d: before (the key columns, or every column under identity full),
 *   then the caller sends a tombstone (`tombstone`) so compacted topics drop the key.
 * - Columns in `unchanged` (TOAST values an UPDATE left as they were) go to
 *   `pgferry_unchanged_toast`; their field holds null or the marker, never a made-up value
 *   that an applier could write.
 * - Before images under the default replica identity carry only key columns; other required
 *   fields hold the placeholder.
 *
 * The change stream's hot path: the envelope is written by the snapshot's field writers
 * (fieldWriter, from each value's UTF-8 bytes) into a shared AvroSlab, with the constant parts
 * of `source` written once, instead of a JavaScript record per image for avsc (which cost the
 * capture about a fifth of its CPU under pgbench). The bytes are avsc's for the same schema and
 * values (change-encoder.spec.ts compares them); keys and values are views of the slab.
 */
export class ChangeEncoder {
  private readonly out = (shared ??= new AvroSlab());
  /** Per column: writes a non-NULL value of the Value record's (nullable) field. */
  private readonly writers: FieldWriter[];
  /** Per column: writes a non-NULL value from the string, where the type allows (textWriter). */
  private readonly texts: Array<TextWriter | null>;
  private readonly keyTexts: Array<TextWriter | null>;
  /** Per key column: writes it in the Key record, where no field is nullable. */
  private readonly keyWriters: FieldWriter[];
  /** Per column: what stands in the Value record for a value not sent (see placeholderFor). */
  private readonly placeholders: Buffer[];
  private readonly keyPlaceholders: Buffer[];
  private readonly nullable: boolean[];
  private readonly keyIdx: number[];
  /** `source` up to ts_ms (version, connector, name), then from snapshot to table. */
  private readonly sourceHead: Buffer;
  private readonly sourceMid: Buffer;

  /** `schemas` are buildSchemas() of `columns`: the layout written, registered under `ids`. */
  constructor(
    readonly columns: ColumnInfo[],
    readonly schemas: TableSchemas,
    private readonly ids: { key: number | null; value: number },
    private readonly source: SourceInfo,
  ) {
    this.nullable = columns.map((c) => !c.notNull);
    this.keyIdx = keyIndexes(columns);
    this.writers = columns.map((c, i) => fieldWriter(c, this.nullable[i], rawText));
    this.keyWriters = this.keyIdx.map((i) => fieldWriter(columns[i], false, rawText));
    this.texts = columns.map((c, i) => textWriter(c, this.nullable[i]));
    this.keyTexts = this.keyIdx.map((i) => textWriter(columns[i], false));
    this.placeholders = columns.map((c, i) => {
      const t = avroTypeFor(c);
      return this.nullable[i] ? Buffer.from([0]) : fieldBytes(t, placeholderFor(t));
    });
    this.keyPlaceholders = this.keyIdx.map((i) => {
      const t = avroTypeFor(columns[i]);
      return fieldBytes(t, placeholderFor(t));
    });
    this.sourceHead = Buffer.concat(['pgferry-0.1', 'postgresql', source.name].map(avroString));
    // snapshot: branch 0 of [string, null], 'false'; db; sequence: null; schema; table.
    this.sourceMid = Buffer.concat([
      Buffer.from([0]),
      avroString('false'),
      avroString(source.db),
      Buffer.from([0]),
      avroString(source.schema),
      avroString(source.table),
    ]);
  }

  /** Writes a non-NULL text value through `write`; the caller writes nulls and placeholders. */
  private value(write: FieldWriter, text: string): void {
    const max = 3 * text.length;
    if (max > scratch.length) scratch = Buffer.allocUnsafe(Math.max(max, 2 * scratch.length));
    const n = scratch.write(text, 0);
    write(this.out, scratch, 0, n);
  }

  /** The Value record of an image: every column, nulls, placeholders for values not sent. */
  private image(texts: ReadonlyArray<string | null>, missing: ReadonlySet<string> | null): void {
    if (texts.length !== this.columns.length)
      throw new DataError(
        `the change has ${texts.length} values, the table has ${this.columns.length} columns: the replication message does not match the table's Relation message`,
      );
    const out = this.out;
    for (let i = 0; i < texts.length; i++) {
      const t = texts[i];
      if (t === null || (missing !== null && missing.has(this.columns[i].name))) {
        const p = this.placeholders[i];
        out.append(p, 0, p.length);
      } else {
        const direct = this.texts[i];
        if (direct) direct(out, t);
        else this.value(this.writers[i], t);
      }
    }
  }

  /** The record key of a row image, or null for a keyless table. */
  private key(texts: ReadonlyArray<string | null>): Buffer | null {
    if (this.ids.key === null || this.keyIdx.length === 0) return null;
    const out = this.out;
    out.begin();
    out.ensure(WIRE_HEADER_BYTES);
    out.pos = writeWireHeader(out.buf, out.pos, this.ids.key);
    for (let k = 0; k < this.keyIdx.length; k++) {
      const t = texts[this.keyIdx[k]];
      if (t === null) {
        const p = this.keyPlaceholders[k];
        out.append(p, 0, p.length);
      } else {
        const direct = this.keyTexts[k];
        if (direct) direct(out, t);
        else this.value(this.keyWriters[k], t);
      }
    }
    return out.end();
  }

  /** The wire header, then the before and after images: the part of the value a row change decides. */
  private writeImages(
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
    unchanged: readonly string[],
  ): void {
    const out = this.out;
    out.ensure(WIRE_HEADER_BYTES);
    out.pos = writeWireHeader(out.buf, out.pos, this.ids.value);
    // before and after: branch 1 of [null, Value] is zigzag 2.
    if (before) {
      out.byte(2);
      this.image(before, null);
    } else out.byte(0);
    if (after) {
      out.byte(2);
      this.image(after, unchanged.length ? new Set(unchanged) : null);
    } else out.byte(0);
  }

  /** `source`, op, ts_ms and `transaction`: the part of the value its place in the stream decides. */
  private writeTail(op: ChangeOp | 't', meta: ChangeMeta): void {
    const out = this.out;
    out.append(this.sourceHead, 0, this.sourceHead.length);
    const ts = lastTsMs.of(meta.tsMs);
    out.append(ts, 0, ts.length);
    out.append(this.sourceMid, 0, this.sourceMid.length);
    if (meta.txId === null) out.byte(0);
    else {
      out.byte(2);
      out.long(meta.txId);
    }
    out.byte(2);
    out.long(meta.lsn);
    out.ensure(3);
    out.buf[out.pos++] = 0; // xmin
    // op, a string of one ASCII letter: length 1 (zigzag 2), the letter.
    out.buf[out.pos++] = 2;
    out.buf[out.pos++] = op.charCodeAt(0);
    out.byte(2);
    const now = lastNow.of(Date.now());
    out.append(now, 0, now.length);
    if (meta.transaction) {
      out.byte(2);
      const id = lastTxId.of(meta.transaction.id);
      out.append(id, 0, id.length);
      out.long(meta.transaction.totalOrder);
      out.long(meta.transaction.dataCollectionOrder);
    } else out.byte(0);
  }

  /** pgferry_unchanged_toast, the value's last field. */
  private writeUnchanged(unchanged: readonly string[]): void {
    const out = this.out;
    // An array is written as blocks: a count, the items, then an empty block.
    if (unchanged.length) {
      out.long(unchanged.length);
      for (const name of unchanged) out.string(name);
    }
    out.byte(0);
  }

  private envelope(
    op: ChangeOp | 't',
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
    unchanged: readonly string[],
    meta: ChangeMeta,
  ): Buffer {
    this.out.begin();
    this.writeImages(before, after, unchanged);
    this.writeTail(op, meta);
    this.writeUnchanged(unchanged);
    return this.out.end();
  }

  /** The record key of the change's row and the source table, for `op` (delete: before, else after). */
  private keyOf(
    op: ChangeOp,
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
  ): Buffer | null {
    const keyFrom = op === 'd' ? before : after;
    // The publisher passes the image the op has (pgoutput always sends it): a pgferry bug if not.
    if (!keyFrom)
      throw new RangeError(
        `a ${op} change of ${this.source.schema}.${this.source.table} needs its ${op === 'd' ? 'before' : 'after'} image`,
      );
    return this.key(keyFrom);
  }

  /** Runs `write` on the slab; a DataError names the change, and nothing half-written stays. */
  private guarded<T>(op: ChangeOp, write: () => T): T {
    try {
      return write();
    } catch (err) {
      this.out.pos = this.out.mark;
      if (!(err instanceof DataError)) throw err;
      throw new DataError(
        `${op} change of ${quoteQualified(this.source.schema, this.source.table)}: ${err.message}`,
        { cause: err },
      );
    }
  }

  encode(
    op: ChangeOp,
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
    unchanged: readonly string[],
    meta: ChangeMeta,
  ): { key: Buffer | null; value: Buffer } {
    return this.guarded(op, () => {
      const value = this.envelope(op, before, after, unchanged, meta);
      return { key: this.keyOf(op, before, after), value };
    });
  }

  /**
   * The parts of a change's record that the row alone decides, ahead of its place in the stream
   * (a streamed transaction's changes, encoded while it is still open): the key, the value up to
   * its `source` block (`head`), and the value's last field (`trailer`). `finish` with the
   * change's ChangeMeta gives the bytes `encode` would. Views of the slab: copy them to keep.
   */
  prepare(
    op: ChangeOp,
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
    unchanged: readonly string[],
  ): { op: ChangeOp; key: Buffer | null; head: Buffer; trailer: Buffer } {
    return this.guarded(op, () => {
      const out = this.out;
      out.begin();
      this.writeImages(before, after, unchanged);
      const head = out.end();
      out.begin();
      this.writeUnchanged(unchanged);
      const trailer = out.end();
      return { op, key: this.keyOf(op, before, after), head, trailer };
    });
  }

  /**
   * The value of a prepared change (see `prepare`) at its place in the stream, from where its
   * head and trailer are kept: data[headStart, headEnd) and data[trailerStart, trailerEnd).
   */
  finish(
    data: Buffer,
    headStart: number,
    headEnd: number,
    op: ChangeOp,
    trailerStart: number,
    trailerEnd: number,
    meta: ChangeMeta,
  ): Buffer {
    const out = this.out;
    out.begin();
    out.append(data, headStart, headEnd);
    this.writeTail(op, meta);
    out.append(data, trailerStart, trailerEnd);
    return out.end();
  }

  /** A TRUNCATE of the table: no row images, no key. */
  encodeTruncate(meta: ChangeMeta): { key: null; value: Buffer } {
    return { key: null, value: this.envelope('t', null, null, [], meta) };
  }
}
