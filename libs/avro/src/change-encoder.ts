import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { quoteQualified, type ColumnInfo } from '@pgferry/pg';
import { avscOptions, avroTypeFor, converterFor, type AvroSchema } from './avro-mapping';
import { fieldNames, keyIndexes, type SourceInfo, type TableSchemas } from './table-schemas';
import { wire } from './confluent-wire';

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
 */
export class ChangeEncoder {
  private readonly keyType: avro.Type | null;
  private readonly valueType: avro.Type;
  private readonly types: AvroSchema[];
  private readonly convs: ReturnType<typeof converterFor>[];
  private readonly names: string[];
  private readonly nullable: boolean[];
  private readonly keyIdx: number[];

  constructor(
    readonly columns: ColumnInfo[],
    readonly schemas: TableSchemas,
    private readonly ids: { key: number | null; value: number },
    private readonly source: SourceInfo,
  ) {
    this.keyType = schemas.key ? avro.Type.forSchema(schemas.key as avro.Schema, avscOptions()) : null;
    this.valueType = avro.Type.forSchema(schemas.value as avro.Schema, avscOptions());
    this.types = columns.map((c) => avroTypeFor(c));
    this.convs = this.types.map((t) => converterFor(t));
    this.names = fieldNames(columns);
    this.nullable = columns.map((c) => !c.notNull);
    this.keyIdx = keyIndexes(columns);
  }

  private record(texts: ReadonlyArray<string | null>, missing: ReadonlySet<string>): Record<string, unknown> {
    if (texts.length !== this.columns.length)
      throw new DataError(
        `the change has ${texts.length} values, the table has ${this.columns.length} columns: the replication message does not match the table's Relation message`,
      );
    const rec: Record<string, unknown> = {};
    for (let i = 0; i < texts.length; i++) {
      const t = texts[i];
      const name = this.names[i];
      if (missing.has(this.columns[i].name) || (t === null && !this.nullable[i]))
        rec[name] = this.nullable[i] ? null : placeholderFor(this.types[i]);
      else rec[name] = t === null ? null : this.convs[i].toAvro(t);
    }
    return rec;
  }

  /** The record key of a row image, or null for a keyless table. */
  private key(rec: Record<string, unknown>): Buffer | null {
    if (!this.keyType) return null;
    const key = Object.fromEntries(this.keyIdx.map((i) => [this.names[i], rec[this.names[i]]]));
    return wire(this.ids.key!, this.keyType.toBuffer(key));
  }

  private envelope(
    op: ChangeOp | 't',
    before: Record<string, unknown> | null,
    after: Record<string, unknown> | null,
    unchanged: readonly string[],
    meta: ChangeMeta,
  ): Buffer {
    const value = this.valueType.toBuffer({
      before,
      after,
      source: {
        version: 'pgferry-0.1',
        connector: 'postgresql',
        name: this.source.name,
        ts_ms: BigInt(meta.tsMs),
        snapshot: 'false',
        db: this.source.db,
        sequence: null,
        schema: this.source.schema,
        table: this.source.table,
        txId: meta.txId === null ? null : BigInt(meta.txId),
        lsn: meta.lsn,
        xmin: null,
      },
      op,
      ts_ms: BigInt(Date.now()),
      transaction: meta.transaction
        ? {
            id: meta.transaction.id,
            total_order: BigInt(meta.transaction.totalOrder),
            data_collection_order: BigInt(meta.transaction.dataCollectionOrder),
          }
        : null,
      pgferry_unchanged_toast: [...unchanged],
    });
    return wire(this.ids.value, value);
  }

  encode(
    op: ChangeOp,
    before: ReadonlyArray<string | null> | null,
    after: ReadonlyArray<string | null> | null,
    unchanged: readonly string[],
    meta: ChangeMeta,
  ): { key: Buffer | null; value: Buffer } {
    let afterRec: Record<string, unknown> | null;
    let beforeRec: Record<string, unknown> | null;
    try {
      afterRec = after ? this.record(after, new Set(unchanged)) : null;
      beforeRec = before ? this.record(before, new Set()) : null;
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      throw new DataError(
        `${op} change of ${quoteQualified(this.source.schema, this.source.table)}: ${err.message}`,
        { cause: err },
      );
    }
    const keyFrom = op === 'd' ? beforeRec : afterRec;
    // The publisher passes the image the op has (pgoutput always sends it): a pgferry bug if not.
    if (!keyFrom)
      throw new RangeError(
        `a ${op} change of ${this.source.schema}.${this.source.table} needs its ${op === 'd' ? 'before' : 'after'} image`,
      );
    return { key: this.key(keyFrom), value: this.envelope(op, beforeRec, afterRec, unchanged, meta) };
  }

  /** A TRUNCATE of the table: no row images, no key. */
  encodeTruncate(meta: ChangeMeta): { key: null; value: Buffer } {
    return { key: null, value: this.envelope('t', null, null, [], meta) };
  }
}
