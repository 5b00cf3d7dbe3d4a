import type { Client } from 'pg';
import type { NameCase } from '@pgferry/core';
import {
  caseName,
  classifyPgError,
  maintenanceMemoryToRaise,
  quoteIdent,
  quoteIdentList,
  quoteQualified,
  type SelectedTable,
  tableKey,
} from '@pgferry/pg';
import { hasUniqueIndexOn } from './pg-apply-session';
import type { DeferredKey } from './pg-row-applier';

/**
 * The statement that creates t's key (its primary key, else its unique NOT NULL key) on the
 * destination, named exactly as on the source, so the post-data restore later finds the
 * constraint and skips it; null when the destination already has a unique index on exactly
 * the key, or the table has no key.
 */
async function keySql(
  source: Client,
  destination: Client,
  t: SelectedTable,
  nameCase?: NameCase,
): Promise<string | null> {
  const key = tableKey(t);
  if (!key.length) return null;
  const target = quoteQualified(t.targetSchema, t.targetTable);
  const destKey = key.map((k) => caseName(k, nameCase));
  if (await hasUniqueIndexOn(destination, target, destKey)) return null;
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
  const r = rows[0];
  // The source's definition names the source's columns; under objects.nameCase the key is
  // written over the destination's names (the constraint keeps its name, as the restored
  // post-data does).
  const renamed = destKey.some((k, i) => k !== key[i]);
  if (r?.conname && !renamed) return `ALTER TABLE ${target} ADD CONSTRAINT ${quoteIdent(r.conname)} ${r.def}`;
  if (r?.conname)
    return `ALTER TABLE ${target} ADD CONSTRAINT ${quoteIdent(r.conname)} ${t.primaryKey.length ? 'PRIMARY KEY' : 'UNIQUE'} (${quoteIdentList(destKey)})`;
  return `CREATE UNIQUE INDEX ${r?.index_name ? quoteIdent(r.index_name) : ''} ON ${target} (${quoteIdentList(destKey)})`;
}

/**
 * Before the load, decides per destination table when it gets the key it is applied by:
 * - a table that already holds rows (one that existed on the destination, or one a stopped run
 *   loaded part of) gets it now, so the applier's upsert merges the rows it brings;
 * - an empty one gets it after the load (buildDeferredKeys), as pgcopydb and pg_restore do:
 *   loading into a table without its unique index costs the destination about half the CPU
 *   (2M pgbench rows arriving from four chunks at once: 2.8 against 5.8 cpu-s). It is returned
 *   as deferred; the applier builds it earlier if a chunk of the table is sent again.
 * Tables with the key already, and keyless tables, are left as they are. Idempotent.
 */
export async function prepareKeyConstraints(
  source: Client,
  destination: Client,
  tables: SelectedTable[],
  nameCase?: NameCase,
): Promise<DeferredKey[]> {
  const deferred: DeferredKey[] = [];
  for (const t of tables) {
    const target = quoteQualified(t.targetSchema, t.targetTable);
    try {
      const sql = await keySql(source, destination, t, nameCase);
      if (!sql) continue;
      const { rows } = await destination.query(`SELECT EXISTS (SELECT FROM ${target}) AS loaded`);
      if (rows[0].loaded) await destination.query(sql);
      else
        deferred.push({
          target,
          key: tableKey(t).map((k) => caseName(k, nameCase)),
          sourceTable: quoteQualified(t.schema, t.table),
          sql,
        });
    } catch (err) {
      throw classifyPgError(err, `creating the key of ${target} on the destination`);
    }
  }
  return deferred;
}

/**
 * After the load, builds the deferred keys the applier did not build already, `jobs` at a time,
 * each on its own destination connection (the connections are ended); `onKey` hears of each as
 * it starts (no ms) and ends (ms it took). Returns how many it built.
 * With `memoryMB`, each connection's maintenance_work_mem is raised to at least that.
 */
export async function buildDeferredKeys(
  connectDestination: () => Promise<Client>,
  deferred: readonly DeferredKey[],
  jobs: number,
  onKey?: (table: string, ms?: number) => void,
  memoryMB = 0,
): Promise<number> {
  if (!deferred.length) return 0;
  let next = 0;
  let built = 0;
  let failed = false;
  const job = async () => {
    const client = await connectDestination();
    try {
      const context = 'raising maintenance_work_mem for the key builds on the destination';
      const memory = await maintenanceMemoryToRaise(client, memoryMB, context);
      if (memory)
        await client
          .query(`SELECT pg_catalog.set_config('maintenance_work_mem', $1, false)`, [memory])
          .catch((err) => {
            throw classifyPgError(err, context);
          });
      for (let d = deferred[next++]; d && !failed; d = deferred[next++]) {
        try {
          if (await hasUniqueIndexOn(client, d.target, d.key)) continue;
          const started = Date.now();
          onKey?.(d.target);
          await client.query(d.sql);
          onKey?.(d.target, Date.now() - started);
          built++;
        } catch (err) {
          failed = true;
          throw classifyPgError(err, `creating the key of ${d.target} on the destination after the load`);
        }
      }
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, deferred.length)) }, job));
  return built;
}
