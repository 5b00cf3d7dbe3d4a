import type { Client } from 'pg';
import { quoteIdent, quoteQualified } from '@pgferry/pg';

interface OwnedSequence {
  seq_schema: string;
  seq_name: string;
  table_schema: string;
  table_name: string;
  column_name: string;
}

/**
 * Moves every sequence a column owns (serial and identity columns) past the largest value of its
 * column, once replay applied the rows. The topics carry rows, not sequence values (the task's
 * cutover copies those from the source, which replay never reaches), so this is the value a
 * rebuilt database needs for its next INSERT not to collide with a replayed key. A sequence of
 * an empty column, or one already past its column's largest value, is left as the dump made it.
 * Returns the sequences set.
 */
export async function advanceOwnedSequences(target: Client): Promise<number> {
  const { rows } = await target.query<OwnedSequence>(`
    SELECT sn.nspname AS seq_schema, s.relname AS seq_name, tn.nspname AS table_schema,
           t.relname AS table_name, a.attname AS column_name
      FROM pg_depend d
      JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
      JOIN pg_namespace sn ON sn.oid = s.relnamespace
      JOIN pg_class t ON t.oid = d.refobjid
      JOIN pg_namespace tn ON tn.oid = t.relnamespace
      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.deptype IN ('a', 'i')
       AND tn.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
     ORDER BY 1, 2`);
  let set = 0;
  for (const r of rows) {
    const seq = quoteQualified(r.seq_schema, r.seq_name);
    const { rows: done } = await target.query<{ set: boolean }>(
      `SELECT setval($1::regclass, m) IS NOT NULL AS set
         FROM (SELECT max(${quoteIdent(r.column_name)}) AS m FROM ${quoteQualified(r.table_schema, r.table_name)}) x,
              pg_sequences p
        WHERE m IS NOT NULL AND p.schemaname = $2 AND p.sequencename = $3
          AND (p.last_value IS NULL OR p.last_value < m)`,
      [seq, r.seq_schema, r.seq_name],
    );
    if (done.length) set++;
  }
  return set;
}

/**
 * Refreshes every materialized view of the target once replay applied the rows: post-data
 * (restored before the rows, so that the keys exist for the appliers) created them over empty
 * tables. In creation order (oid), which puts a view after the views it reads. Returns how many.
 */
export async function refreshMaterializedViews(target: Client): Promise<number> {
  const { rows } = await target.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
     ORDER BY c.oid`);
  for (const r of rows) await target.query(`REFRESH MATERIALIZED VIEW ${quoteQualified(r.schema, r.name)}`);
  return rows.length;
}
