import type { Client } from 'pg';
import { classifyPgError } from './classify';

export interface TableInfo {
  schema: string;
  table: string;
  /** Primary-key columns in key order; empty when the table has none. */
  primaryKey: string[];
  /** 'd' default, 'n' nothing, 'f' full, 'i' index. */
  replicaIdentity: string;
  /** Columns of a unique index whose columns are all NOT NULL, when there is no primary key. */
  uniqueNotNullKey: string[];
  estimatedRows: number;
  bytes: number;
  partitioned: boolean;
}

/**
 * Every user table (plain and partitioned roots; partitions are reached through their root)
 * outside the system schemas, with its key and size, in one query.
 */
export async function listTables(client: Client, context: string): Promise<TableInfo[]> {
  try {
    const { rows } = await client.query(`
      SELECT n.nspname AS schema, c.relname AS "table", c.relreplident AS replica_identity,
             c.relkind = 'p' AS partitioned,
             greatest(c.reltuples, 0)::bigint AS estimated_rows,
             pg_total_relation_size(c.oid) AS bytes,
             coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                         FROM pg_index i
                         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                        WHERE i.indrelid = c.oid AND i.indisprimary), '{}'::text[]) AS primary_key,
             coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                         FROM (SELECT i.* FROM pg_index i
                                WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary
                                  AND i.indpred IS NULL AND i.indexprs IS NULL
                                  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) x(attnum)
                                                   JOIN pg_attribute a2 ON a2.attrelid = i.indrelid AND a2.attnum = x.attnum
                                                  WHERE NOT a2.attnotnull)
                                ORDER BY i.indnatts, i.indexrelid LIMIT 1) i
                         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), '{}'::text[]) AS unique_key
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
       ORDER BY n.nspname, c.relname`);
    return rows.map((r) => ({
      schema: r.schema,
      table: r.table,
      primaryKey: r.primary_key,
      replicaIdentity: r.replica_identity,
      uniqueNotNullKey: r.unique_key,
      estimatedRows: Number(r.estimated_rows),
      bytes: Number(r.bytes),
      partitioned: r.partitioned,
    }));
  } catch (err) {
    throw classifyPgError(err, context);
  }
}
