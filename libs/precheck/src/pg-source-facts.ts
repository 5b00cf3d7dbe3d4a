import type { Client } from 'pg';
import { classifyPgError, resolveSelection, readServerInfo } from '@pgferry/pg';
import type { TaskSpec } from '@pgferry/core';
import { readDatabaseFacts } from './pg-database-facts';
import { relKey, taskSlotName, type SourceFacts, type SourceTableFacts } from './precheck-facts';

/**
 * Everything the checks need from the source: server settings, the resolved selection and, per
 * selected table, ownership, SELECT, persistence, generated columns, its unique key index and the
 * sequences it owns (serial and identity), plus large objects and the task's slot.
 */
export async function readSourceFacts(client: Client, spec: TaskSpec): Promise<SourceFacts> {
  const context = 'reading the source catalog for the precheck';
  const info = await readServerInfo(client, 'source');
  const db = await readDatabaseFacts(client, context);
  const selection = await resolveSelection(client, spec.objects);
  try {
    const schemas = [...new Set(selection.tables.map((t) => t.schema))];
    const tableRows = await client.query(tableFactsSql(info.major), [
      selection.tables.map((t) => t.schema),
      selection.tables.map((t) => t.table),
    ]);
    const tables = new Map<string, SourceTableFacts>();
    for (const r of tableRows.rows) {
      tables.set(relKey(r.schema, r.table), {
        owner: r.owner,
        ownedByUser: r.owned,
        canSelect: r.can_select,
        unlogged: r.unlogged,
        generatedColumns: r.generated,
        uniqueIndex: r.unique_index,
        ownedSequences: r.sequences,
      });
    }
    const usage = await client.query(
      `SELECT s AS schema, has_schema_privilege(n.oid, 'USAGE') AS usage
         FROM unnest($1::text[]) s JOIN pg_namespace n ON n.nspname = s`,
      [schemas],
    );
    const lo = await client.query('SELECT count(*)::int8 AS n FROM pg_largeobject_metadata');
    const slot = await client.query(
      `SELECT slot_name, slot_type, plugin, database, active_pid, confirmed_flush_lsn::text AS confirmed,
              to_jsonb(s) ->> 'wal_status' AS wal_status
         FROM pg_replication_slots s WHERE slot_name = $1`,
      [taskSlotName(spec.name)],
    );
    const s = slot.rows[0];
    return {
      info,
      db,
      selection,
      tables,
      schemaUsage: new Map(usage.rows.map((r) => [r.schema as string, r.usage as boolean])),
      largeObjects: Number(lo.rows[0].n),
      slot: s
        ? {
            name: s.slot_name,
            type: s.slot_type,
            plugin: s.plugin,
            database: s.database,
            activePid: s.active_pid,
            confirmedLsn: s.confirmed,
            walStatus: s.wal_status,
          }
        : null,
    };
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

/**
 * One row per selected table ($1 schemas, $2 tables, pairwise). The unique index follows the rule
 * of listTables (non-partial, no expressions, all columns NOT NULL, fewest columns first), so it
 * names the index behind uniqueNotNullKey. Generated columns exist from PostgreSQL 12.
 */
function tableFactsSql(major: number): string {
  const generated =
    major >= 12
      ? `coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated <> ''), '{}'::text[])`
      : `'{}'::text[]`;
  return `
    SELECT s.schema, s.tbl AS "table",
           pg_get_userbyid(c.relowner) AS owner,
           pg_has_role(c.relowner, 'USAGE') AS owned,
           has_table_privilege(c.oid, 'SELECT') AS can_select,
           c.relpersistence = 'u' AS unlogged,
           ${generated} AS generated,
           (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = c.oid AND i.indisunique AND NOT i.indisprimary
               AND i.indpred IS NULL AND i.indexprs IS NULL
               AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) x(attnum)
                                 JOIN pg_attribute a2 ON a2.attrelid = i.indrelid AND a2.attnum = x.attnum
                                WHERE NOT a2.attnotnull)
             ORDER BY i.indnatts, i.indexrelid LIMIT 1) AS unique_index,
           coalesce((SELECT json_agg(json_build_object('schema', sn.nspname, 'name', sc.relname,
                                     'canSelect', has_sequence_privilege(sc.oid, 'SELECT'))
                                     ORDER BY sn.nspname, sc.relname)
                       FROM pg_depend d
                       JOIN pg_class sc ON sc.oid = d.objid AND sc.relkind = 'S'
                       JOIN pg_namespace sn ON sn.oid = sc.relnamespace
                      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                        AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')), '[]'::json) AS sequences
      FROM unnest($1::text[], $2::text[]) AS s(schema, tbl)
      JOIN pg_namespace n ON n.nspname = s.schema
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tbl AND c.relkind IN ('r', 'p')`;
}
