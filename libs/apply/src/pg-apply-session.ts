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
