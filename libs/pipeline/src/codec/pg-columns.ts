import type { Client } from 'pg';
import { classifyPgError, quoteQualified } from '@pgferry/pg';

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
    return rows.map((r) => {
      const numeric = r.base_type === 'numeric' && r.typmod > 0;
      return {
        name: r.name,
        type: r.type,
        baseType: r.base_type,
        precision: numeric ? ((r.typmod - 4) >> 16) & 0xffff : null,
        scale: numeric ? (r.typmod - 4) & 0xffff : null,
        notNull: r.not_null,
        keyPosition: key.indexOf(r.name) + 1,
      };
    });
  } catch (err) {
    throw classifyPgError(err, `reading the columns of ${quoteQualified(schema, table)}`);
  }
}
