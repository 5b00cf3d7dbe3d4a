import type { Client } from 'pg';
import { classifyPgError, quoteQualified, type SelectedTable } from '@pgferry/pg';

/** A part of one (leaf) table: heap pages [loPage, hiPage), hiPage null = to the end. */
export interface ChunkPlan {
  /** The table whose topic and key the rows belong to (the partition root for partitions). */
  schema: string;
  table: string;
  /** The relation actually read (a leaf partition, or the table itself). */
  readSchema: string;
  readTable: string;
  loPage: number;
  hiPage: number | null;
  estimatedRows: number;
}

export interface PlannedChunk {
  id: string;
  sourceTable: string;
  plan: ChunkPlan;
}

/**
 * Splits every selected table into chunks of about `chunkRows` rows by heap page (ctid) ranges:
 * it needs no key, works for any table, and PostgreSQL 14+ reads a ctid range with a TID range
 * scan. Partitioned tables are read leaf by leaf. The last chunk of a relation is open-ended,
 * so rows on pages beyond the estimate are never missed. Chunk ids are stable strings that sort
 * in plan order; the plan is stored in the control schema and reused on restart.
 */
export async function planChunks(
  client: Client,
  tables: SelectedTable[],
  chunkRows: number,
): Promise<PlannedChunk[]> {
  const out: PlannedChunk[] = [];
  let n = 0;
  for (const t of tables) {
    let leaves: Array<{ schema: string; table: string; pages: number; tuples: number }>;
    try {
      const { rows } = await client.query(
        // pg_partition_tree lists the leaves of a partitioned table and nothing for a plain
        // table, which is then its own single leaf.
        `WITH rel AS (SELECT $1::regclass AS oid),
              leaves AS (SELECT p.relid AS oid FROM rel, pg_partition_tree(rel.oid) p WHERE p.isleaf
                         UNION ALL
                         SELECT rel.oid FROM rel WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree(rel.oid)))
         SELECT n.nspname AS schema, c.relname AS "table",
                (pg_relation_size(c.oid) / current_setting('block_size')::int)::int AS pages,
                greatest(c.reltuples, 0)::float8 AS tuples
           FROM leaves l JOIN pg_class c ON c.oid = l.oid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r'
          ORDER BY n.nspname, c.relname`,
        [quoteQualified(t.schema, t.table)],
      );
      leaves = rows;
    } catch (err) {
      throw classifyPgError(err, `planning chunks of ${quoteQualified(t.schema, t.table)}`);
    }
    for (const leaf of leaves) {
      const rowsPerPage = leaf.pages > 0 && leaf.tuples > 0 ? leaf.tuples / leaf.pages : 0;
      const pagesPerChunk =
        rowsPerPage > 0 ? Math.max(1, Math.floor(chunkRows / rowsPerPage)) : Number.MAX_SAFE_INTEGER;
      let lo = 0;
      do {
        const hi = lo + pagesPerChunk >= leaf.pages ? null : lo + pagesPerChunk;
        const id = `${String(n++).padStart(8, '0')} ${t.schema}.${t.table}`;
        out.push({
          id,
          sourceTable: quoteQualified(t.schema, t.table),
          plan: {
            schema: t.schema,
            table: t.table,
            readSchema: leaf.schema,
            readTable: leaf.table,
            loPage: lo,
            hiPage: hi,
            estimatedRows: Math.round(((hi ?? leaf.pages) - lo) * rowsPerPage),
          },
        });
        if (hi === null) break;
        lo = hi;
      } while (lo < leaf.pages);
    }
  }
  return out;
}

/** The WHERE clause selecting a chunk's pages. Page numbers are integers from the plan. */
export function chunkPredicate(plan: ChunkPlan): string {
  const lo = `ctid >= '(${Math.trunc(plan.loPage)},0)'::tid`;
  return plan.hiPage === null ? lo : `${lo} AND ctid < '(${Math.trunc(plan.hiPage)},0)'::tid`;
}
