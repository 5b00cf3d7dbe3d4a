import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { classifyPgError, quoteIdent } from '@pgferry/pg';

/**
 * Every applier session runs with session_replication_role = replica, so destination triggers
 * and foreign keys do not fire a second time for rows the source already checked.
 */
export async function setReplicaRole(client: Client): Promise<void> {
  try {
    await client.query('SET session_replication_role = replica');
  } catch (err) {
    throw classifyPgError(
      err,
      'setting session_replication_role = replica on the destination (needs a superuser, so destination triggers and foreign keys do not fire twice)',
    );
  }
}

/** How COPY reads the chunks: text lines, or the binary format (header, tuples, trailer). */
export type CopyFormat = 'text' | 'binary';

/** COPY `chunks` (whole lines or tuples) into `table` (already quoted) through its `columns`. */
export async function copyInto(
  client: Client,
  table: string,
  columns: readonly string[],
  chunks: ReadonlyArray<Buffer | string>,
  format: CopyFormat = 'text',
): Promise<void> {
  const copy = client.query(
    copyFrom(
      `COPY ${table} (${columns.map(quoteIdent).join(', ')}) FROM STDIN${format === 'binary' ? ' (FORMAT binary)' : ''}`,
    ),
  );
  await new Promise<void>((resolve, reject) => {
    copy.on('error', reject);
    copy.on('finish', resolve);
    for (const c of chunks) copy.write(c);
    copy.end();
  });
}

/**
 * Whether `table` (already quoted) has a unique index on exactly `key`, in order, without a
 * predicate or expressions; with `immediate`, only a non-deferrable one counts.
 */
export async function hasUniqueIndexOn(
  client: Client,
  table: string,
  key: readonly string[],
  immediate = false,
): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM pg_index x WHERE x.indrelid = $1::regclass AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
        AND (x.indimmediate OR NOT $3)
        AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) = $2::text[]`,
    [table, key, immediate],
  );
  return rows.length > 0;
}

/**
 * The type OID of each column of `table` (already quoted) by name; empty when the table does not
 * exist (its COPY then fails with the usual error).
 */
export async function columnTypeOids(client: Client, table: string): Promise<Map<string, number>> {
  const { rows } = await client.query(
    `SELECT a.attname AS name, a.atttypid::int8 AS oid FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [table],
  );
  return new Map(rows.map((r: { name: string; oid: string }) => [r.name, Number(r.oid)]));
}

/**
 * The type each column of `table` (already quoted) takes its values in, by name: as format_type
 * names it without its modifier (`character varying`, not `character varying(20)`; typmod -1,
 * not NULL, so char(n) is `bpchar` and bit(n) `"bit"`, not `character` and `bit`, which SQL
 * reads as char(1) and bit(1)), and for a domain its base type, through domains over domains. A value is cast to that type and assigned
 * to the column, so the column's modifier and its domain's constraints apply as they do to an
 * INSERT's values: an explicit cast to varchar(4), or to a domain over it, would cut a longer
 * value short silently. Empty when the table does not exist.
 */
export async function columnTypeNames(client: Client, table: string): Promise<Map<string, string>> {
  const { rows } = await client.query(
    `WITH RECURSIVE base(name, typ) AS (
       SELECT a.attname, a.atttypid FROM pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
       UNION ALL
       SELECT b.name, t.typbasetype FROM base b JOIN pg_type t ON t.oid = b.typ WHERE t.typtype = 'd')
     SELECT b.name, format_type(b.typ, -1) AS type FROM base b JOIN pg_type t ON t.oid = b.typ
      WHERE t.typtype <> 'd'`,
    [table],
  );
  return new Map(rows.map((r: { name: string; type: string }) => [r.name, r.type]));
}

/** A character an element of an array literal must have escaped (with a backslash). */
const ARRAY_ESCAPED = /["\\]/;
const ARRAY_ESCAPES = /["\\]/g;

/**
 * A text[] literal of `values`: every element double-quoted (so that commas, braces, blanks and
 * the word NULL stay text), `"` and `\` escaped, and NULL for null. node-postgres writes the same
 * for a JS array, but two regular-expression replaces per element (and its checks for nested
 * arrays, dates and buffers) were 5% of the applier under pgbench; here an element is searched
 * once and replaced only when it holds one of the two characters.
 */
export function textArrayLiteral(values: ReadonlyArray<string | null>): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    // A value missing from a row (undefined) is NULL too, as node-postgres wrote it.
    if (v === null || v === undefined) out += 'NULL';
    else out += ARRAY_ESCAPED.test(v) ? `"${v.replace(ARRAY_ESCAPES, '\\$&')}"` : `"${v}"`;
  }
  return out + '}';
}

/**
 * Rows as statement parameters: one text[] literal per column (see textArrayLiteral), and the
 * FROM item that turns them back into rows, `unnest($1::text[], ...) AS s(c0, c1, ...)`, whose
 * column i is `s.c<i>` (cast it to the column's type: see columnTypeNames). One statement carries
 * a whole run of rows with no staging table and no COPY round trips.
 */
export function rowsAsArrays(
  rows: ReadonlyArray<ReadonlyArray<string | null>>,
  width: number,
  pick?: readonly number[],
): { params: string[]; from: string } {
  const params: string[] = [];
  const column = new Array<string | null>(rows.length);
  for (let i = 0; i < width; i++) {
    const at = pick ? pick[i] : i;
    for (let r = 0; r < rows.length; r++) column[r] = rows[r][at];
    params.push(textArrayLiteral(column));
  }
  const arrays = params.map((_, i) => `$${i + 1}::text[]`).join(', ');
  const aliases = params.map((_, i) => `c${i}`).join(', ');
  return { params, from: `unnest(${arrays}) AS s(${aliases})` };
}
