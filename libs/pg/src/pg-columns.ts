import type { Client } from 'pg';
import { classifyPgError } from './classify';
import { quoteQualified } from './ident';

export interface ColumnInfo {
  name: string;
  /** format_type, e.g. "numeric(12,4)", "timestamp with time zone", "integer[]". */
  type: string;
  /** The base type after unwrapping domains, e.g. "int4"; arrays are "_int4". */
  baseType: string;
  /** numeric(p,s): precision and scale; null when unconstrained or not numeric. */
  precision: number | null;
  scale: number | null;
  notNull: boolean;
  /** 1-based position in the primary (or unique not-null) key, 0 when not a key column. */
  keyPosition: number;
}

/**
 * The columns pgferry carries for a table, in table order, without dropped and generated
 * columns (generated values are computed again on the destination). One round trip.
 */
export async function describeColumns(
  client: Client,
  schema: string,
  table: string,
  key: string[],
): Promise<ColumnInfo[]> {
  try {
    const { rows } = await client.query(
      `WITH RECURSIVE cols AS (
         SELECT a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull, format_type(a.atttypid, a.atttypmod) AS type
           FROM pg_attribute a
          WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       ), base AS (
         SELECT c.attnum, t.oid, t.typtype, t.typbasetype, t.typtypmod, 0 AS depth FROM cols c JOIN pg_type t ON t.oid = c.atttypid
         UNION ALL
         SELECT b.attnum, t.oid, t.typtype, t.typbasetype, t.typtypmod, b.depth + 1 FROM base b JOIN pg_type t ON t.oid = b.typbasetype WHERE b.typtype = 'd'
       )
       SELECT c.attname AS name, c.type, c.attnotnull AS not_null,
              (SELECT t.typname FROM base b JOIN pg_type t ON t.oid = b.oid WHERE b.attnum = c.attnum AND b.typtype <> 'd' ORDER BY depth LIMIT 1) AS base_type,
              CASE WHEN c.atttypmod > 0 THEN c.atttypmod ELSE
                (SELECT b.typtypmod FROM base b WHERE b.attnum = c.attnum AND b.typtype = 'd' ORDER BY depth DESC LIMIT 1) END AS typmod
         FROM cols c ORDER BY c.attnum`,
      [quoteQualified(schema, table)],
    );
    return rows.map((r) => columnInfo(r, key));
  } catch (err) {
    throw classifyPgError(err, `reading the columns of ${quoteQualified(schema, table)}`);
  }
}

/**
 * Columns as the change stream describes them (names, type OIDs and modifiers from pgoutput's
 * Relation message), in the stream's order: the shape of the rows at that point of the stream,
 * which may be older than the table's shape now when later schema changes are still queued.
 * NOT NULL comes from the table now (a column gone since is taken as nullable).
 */
export async function describeStreamColumns(
  client: Client,
  schema: string,
  table: string,
  columns: ReadonlyArray<{ name: string; typeOid: number; typeMod: number }>,
  key: string[],
): Promise<ColumnInfo[]> {
  try {
    const { rows } = await client.query(
      `WITH RECURSIVE cols AS (
         SELECT c.ord, c.name, c.oid::oid AS atttypid, c.typmod AS atttypmod, format_type(c.oid::oid, c.typmod) AS type
           FROM unnest($2::text[], $3::int8[], $4::int4[]) WITH ORDINALITY AS c(name, oid, typmod, ord)
       ), base AS (
         SELECT c.ord, t.oid, t.typtype, t.typbasetype, t.typtypmod, 0 AS depth FROM cols c JOIN pg_type t ON t.oid = c.atttypid
         UNION ALL
         SELECT b.ord, t.oid, t.typtype, t.typbasetype, t.typtypmod, b.depth + 1 FROM base b JOIN pg_type t ON t.oid = b.typbasetype WHERE b.typtype = 'd'
       )
       SELECT c.name, c.type,
              coalesce((SELECT a.attnotnull FROM pg_attribute a
                         WHERE a.attrelid = to_regclass($1) AND a.attname = c.name AND NOT a.attisdropped), false) AS not_null,
              (SELECT t.typname FROM base b JOIN pg_type t ON t.oid = b.oid WHERE b.ord = c.ord AND b.typtype <> 'd' ORDER BY depth LIMIT 1) AS base_type,
              CASE WHEN c.atttypmod > 0 THEN c.atttypmod ELSE
                (SELECT b.typtypmod FROM base b WHERE b.ord = c.ord AND b.typtype = 'd' ORDER BY depth DESC LIMIT 1) END AS typmod
         FROM cols c ORDER BY c.ord`,
      [
        quoteQualified(schema, table),
        columns.map((c) => c.name),
        columns.map((c) => String(c.typeOid)),
        columns.map((c) => c.typeMod),
      ],
    );
    return rows.map((r) => columnInfo(r, key));
  } catch (err) {
    throw classifyPgError(
      err,
      `reading the column types of ${quoteQualified(schema, table)} as the stream describes it`,
    );
  }
}

/** One row of the catalog queries above as a ColumnInfo. */
function columnInfo(
  r: { name: string; type: string; base_type: string; typmod: number | null; not_null: boolean },
  key: string[],
): ColumnInfo {
  const numeric = r.base_type === 'numeric' && (r.typmod ?? 0) > 0;
  const typmod = r.typmod ?? 0;
  return {
    name: r.name,
    type: r.type,
    baseType: r.base_type,
    precision: numeric ? ((typmod - 4) >> 16) & 0xffff : null,
    scale: numeric ? (typmod - 4) & 0xffff : null,
    notNull: r.not_null,
    keyPosition: key.indexOf(r.name) + 1,
  };
}
