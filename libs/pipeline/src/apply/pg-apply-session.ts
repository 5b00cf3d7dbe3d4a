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

/** COPY text `chunks` (whole lines) into `table` (already quoted) through its `columns`. */
export async function copyInto(
  client: Client,
  table: string,
  columns: readonly string[],
  chunks: ReadonlyArray<Buffer | string>,
): Promise<void> {
  const copy = client.query(copyFrom(`COPY ${table} (${columns.map(quoteIdent).join(', ')}) FROM STDIN`));
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
