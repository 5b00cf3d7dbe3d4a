import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteIdentList, quoteQualified, type SelectedTable } from '@pgferry/pg';

/**
 * Before the load, each destination table gets the key it is applied by (its primary key, else
 * its unique NOT NULL key), named exactly as on the source: the applier's INSERT ... ON CONFLICT
 * needs it, and the post-data restore then finds the constraint and skips it. Everything else of
 * post-data (other indexes, foreign keys, triggers) still comes after the data. Idempotent.
 */
export async function createKeyConstraints(
  source: Client,
  destination: Client,
  tables: SelectedTable[],
): Promise<number> {
  let created = 0;
  for (const t of tables) {
    const key = t.primaryKey.length ? t.primaryKey : t.uniqueNotNullKey;
    if (!key.length) continue;
    const target = quoteQualified(t.targetSchema, t.targetTable);
    try {
      const { rows } = await source.query(
        `SELECT k.conname, pg_get_constraintdef(k.oid) AS def, i.relname AS index_name
           FROM pg_class c
           LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = $2
           LEFT JOIN LATERAL (SELECT ic.relname FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                               WHERE x.indrelid = c.oid AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
                                 AND (SELECT array_agg(a.attname::text ORDER BY k2.ord) FROM unnest(x.indkey) WITH ORDINALITY k2(attnum, ord)
                                        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k2.attnum) = $3::text[]
                               LIMIT 1) i ON true
          WHERE c.oid = $1::regclass
            AND (k.oid IS NULL OR (SELECT array_agg(a.attname::text ORDER BY k3.ord) FROM unnest(k.conkey) WITH ORDINALITY k3(attnum, ord)
                                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k3.attnum) = $3::text[])
          ORDER BY k.oid NULLS LAST LIMIT 1`,
        [quoteQualified(t.schema, t.table), t.primaryKey.length ? 'p' : 'u', key],
      );
      const exists = await destination.query(
        `SELECT 1 FROM pg_index x WHERE x.indrelid = $1::regclass AND x.indisunique
            AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) = $2::text[]`,
        [target, key],
      );
      if (exists.rows.length) continue;
      const r = rows[0];
      if (r?.conname)
        await destination.query(`ALTER TABLE ${target} ADD CONSTRAINT ${quoteIdent(r.conname)} ${r.def}`);
      else
        await destination.query(
          `CREATE UNIQUE INDEX ${r?.index_name ? quoteIdent(r.index_name) : ''} ON ${target} (${quoteIdentList(key)})`,
        );
      created++;
    } catch (err) {
      throw classifyPgError(err, `creating the key of ${target} on the destination`);
    }
  }
  return created;
}
