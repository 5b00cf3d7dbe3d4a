import type { Client } from 'pg';
import { classifyPgError, readServerInfo, quoteQualified } from '@pgferry/pg';
import type { TablePrivilege } from './grant-statements';
import { readDatabaseFacts } from './pg-database-facts';
import {
  CONTROL_SCHEMA,
  CONTROL_TABLES,
  relKey,
  type DestinationFacts,
  type DestinationRelationFacts,
  type DestinationSchemaFacts,
} from './precheck-facts';

export interface DestinationTargets {
  /** Target schemas (after renames). */
  schemas: string[];
  /** Target tables (after renames). */
  tables: Array<{ schema: string; table: string }>;
}

/**
 * Reads what the checks need from the destination: its settings, the target and control schemas
 * and the relations already named like a target or control table, with this user's privileges,
 * and this task's record in the control schema. Read-only; names go as bind parameters, so any
 * name (quotes, spaces, Unicode) is looked up exactly.
 */
export async function readDestinationFacts(
  client: Client,
  taskName: string,
  targets: DestinationTargets,
): Promise<DestinationFacts> {
  const context = 'reading the destination catalog for the precheck';
  const info = await readServerInfo(client, 'destination');
  const db = await readDatabaseFacts(client, context);
  try {
    const canSetReplicationRole =
      info.isSuperuser ||
      (info.major >= 15 &&
        (await client.query(`SELECT has_parameter_privilege('session_replication_role', 'SET') AS ok`))
          .rows[0].ok === true);
    const schemaRows = await client.query(
      `SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner,
              has_schema_privilege(n.oid, 'USAGE') AS usage, has_schema_privilege(n.oid, 'CREATE') AS "create"
         FROM pg_namespace n WHERE n.nspname = ANY($1::text[])`,
      [[...new Set([...targets.schemas, CONTROL_SCHEMA])]],
    );
    const schemas = new Map<string, DestinationSchemaFacts>(
      schemaRows.rows.map((r) => [r.schema, { owner: r.owner, usage: r.usage, create: r.create }]),
    );
    const wanted = [...targets.tables, ...CONTROL_TABLES.map((table) => ({ schema: CONTROL_SCHEMA, table }))];
    const relRows = await client.query(
      `SELECT s.schema, s.tbl AS "table", c.relkind::text AS kind,
              coalesce(c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'SELECT'), false) AS "SELECT",
              coalesce(c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'INSERT'), false) AS "INSERT",
              coalesce(c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'UPDATE'), false) AS "UPDATE",
              coalesce(c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'DELETE'), false) AS "DELETE",
              coalesce(c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'TRUNCATE'), false) AS "TRUNCATE"
         FROM unnest($1::text[], $2::text[]) AS s(schema, tbl)
         JOIN pg_namespace n ON n.nspname = s.schema
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tbl`,
      [wanted.map((t) => t.schema), wanted.map((t) => t.table)],
    );
    const relations = new Map<string, DestinationRelationFacts>();
    for (const r of relRows.rows) {
      const privileges = {} as Record<TablePrivilege, boolean>;
      for (const p of ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const) privileges[p] = r[p];
      relations.set(relKey(r.schema, r.table), { kind: r.kind, privileges });
    }
    return {
      info,
      db,
      canSetReplicationRole,
      schemas,
      relations,
      controlTask: await readControlTask(client, taskName, schemas, relations),
    };
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

/** This task's row in pgferry.tasks; the query runs only when the table exists and is readable. */
async function readControlTask(
  client: Client,
  taskName: string,
  schemas: Map<string, DestinationSchemaFacts>,
  relations: Map<string, DestinationRelationFacts>,
): Promise<DestinationFacts['controlTask']> {
  const tasks = relations.get(relKey(CONTROL_SCHEMA, 'tasks'));
  if (!tasks || tasks.kind !== 'r') return null;
  if (!schemas.get(CONTROL_SCHEMA)?.usage || !tasks.privileges.SELECT) return undefined;
  const { rows } = await client.query(
    `SELECT slot_name FROM ${quoteQualified(CONTROL_SCHEMA, 'tasks')} WHERE task = $1`,
    [taskName],
  );
  return rows[0] ? { slotName: rows[0].slot_name } : null;
}
