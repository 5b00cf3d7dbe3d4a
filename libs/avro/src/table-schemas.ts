import type { ColumnInfo } from '@pgferry/pg';
import { avroTypeFor } from './avro-mapping';

/**
 * The Avro schemas of one table's topic: Debezium's envelope and names, the key of the table's
 * key columns, the same for snapshot rows and streamed changes.
 */

/** A valid Avro name for a PostgreSQL name: other characters become _, a leading digit gets _. */
export function avroName(name: string): string {
  let out = name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(out)) out = `_${out}`;
  return out;
}

/** Valid, unique Avro field names for columns, in order; originals stay in "pg.name". */
export function fieldNames(columns: ColumnInfo[]): string[] {
  const used = new Set<string>();
  return columns.map((c) => {
    const base = avroName(c.name);
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  });
}

export interface SourceInfo {
  /** The topic prefix (Debezium's logical server name). */
  name: string;
  db: string;
  schema: string;
  table: string;
}

export interface TableSchemas {
  key: Record<string, unknown> | null;
  value: Record<string, unknown>;
}

/** Debezium's `source` block, as every pgferry envelope carries it. */
const SOURCE_SCHEMA = {
  type: 'record',
  name: 'Source',
  namespace: 'io.debezium.connector.postgresql',
  fields: [
    { name: 'version', type: 'string' },
    { name: 'connector', type: 'string' },
    { name: 'name', type: 'string' },
    { name: 'ts_ms', type: 'long' },
    { name: 'snapshot', type: ['string', 'null'], default: 'false' },
    { name: 'db', type: 'string' },
    { name: 'sequence', type: ['null', 'string'], default: null },
    { name: 'schema', type: 'string' },
    { name: 'table', type: 'string' },
    { name: 'txId', type: ['null', 'long'], default: null },
    { name: 'lsn', type: ['null', 'long'], default: null },
    { name: 'xmin', type: ['null', 'long'], default: null },
  ],
};

/** Debezium's `transaction` block (in a [null, block] union). */
const TRANSACTION_BLOCK = {
  type: 'record',
  name: 'block',
  namespace: 'event',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'total_order', type: 'long' },
    { name: 'data_collection_order', type: 'long' },
  ],
};

export function buildSchemas(
  prefix: string,
  schema: string,
  table: string,
  columns: ColumnInfo[],
): TableSchemas {
  const namespace = [prefix, schema, table].map((p) => p.split('.').map(avroName).join('_')).join('.');
  const names = fieldNames(columns);
  const field = (c: ColumnInfo, i: number, forKey: boolean) => {
    const t = avroTypeFor(c);
    const nullable = !c.notNull && !forKey;
    const type = nullable ? ['null', ...(Array.isArray(t) ? t : [t])] : t;
    return { name: names[i], type, ...(nullable ? { default: null } : {}), 'pg.name': c.name };
  };
  const keyCols = columns
    .map((c, i) => ({ c, i }))
    .filter((x) => x.c.keyPosition > 0)
    .sort((a, b) => a.c.keyPosition - b.c.keyPosition);
  const key = keyCols.length
    ? { type: 'record', name: 'Key', namespace, fields: keyCols.map((x) => field(x.c, x.i, true)) }
    : null;
  const valueRecord = {
    type: 'record',
    name: 'Value',
    namespace,
    fields: columns.map((c, i) => field(c, i, false)),
  };
  return { key, value: envelopeSchema(namespace, valueRecord) };
}

/**
 * The Debezium envelope around a table's Value record: before and after images, source,
 * op, ts_ms, transaction, and pgferry's list of unchanged TOAST columns.
 */
export function envelopeSchema(
  namespace: string,
  valueRecord: Record<string, unknown>,
): Record<string, unknown> {
  return {
    type: 'record',
    name: 'Envelope',
    namespace,
    fields: [
      { name: 'before', type: ['null', valueRecord], default: null },
      { name: 'after', type: ['null', `${namespace}.Value`], default: null },
      { name: 'source', type: SOURCE_SCHEMA },
      { name: 'op', type: 'string' },
      { name: 'ts_ms', type: ['null', 'long'], default: null },
      {
        name: 'transaction',
        type: ['null', TRANSACTION_BLOCK],
        default: null,
      },
      { name: 'pgferry_unchanged_toast', type: { type: 'array', items: 'string' }, default: [] },
    ],
  };
}

/** Positions of the key columns, in key order. */
export function keyIndexes(columns: ColumnInfo[]): number[] {
  return columns
    .map((c, i) => ({ c, i }))
    .filter((x) => x.c.keyPosition > 0)
    .sort((a, b) => a.c.keyPosition - b.c.keyPosition)
    .map((x) => x.i);
}
