import type { Client } from 'pg';
import { classifyPgError } from '@pgferry/pg';
import type { SelectionCatalog, SourceRelation } from './pg-dump-selection';
import type { TocEntry } from './toc';

/**
 * Catalog reads for the schema migration. All read-only; every value is a bind parameter.
 * Errors are classified with `context` (which server, what for).
 */

/** An object as the server identifies it (pg_identify_object / pg_identify_object_as_address). */
export interface ObjectIdentity {
  /** e.g. 'table', 'function', 'table constraint'. */
  type: string;
  /** Fully qualified and quoted: "Sales Dept"."Order ""Lines""", app.add(integer,integer). */
  identity: string;
  /** Unquoted name parts, e.g. ['Sales Dept', 'Order "Lines"'] for a table. */
  names: string[];
  args: string[];
  /** For an index: the identity of its table. */
  indexTable?: string;
}

async function run<R>(client: Client, context: string, sql: string, params: unknown[] = []): Promise<R[]> {
  try {
    return (await client.query(sql, params)).rows as R[];
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

const USER_SCHEMA = `n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

/** Schemas, relations (with partition parents and sequence owners) and role names. */
export async function readSelectionCatalog(
  client: Client,
  context: string,
): Promise<SelectionCatalog & { roles: string[] }> {
  const schemas = await run<{ nspname: string }>(
    client,
    context,
    `SELECT n.nspname FROM pg_namespace n WHERE ${USER_SCHEMA} ORDER BY n.nspname`,
  );
  const rels = await run<Record<string, string | null>>(
    client,
    context,
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
            pn.nspname AS parent_schema, pc.relname AS parent_name,
            onm.nspname AS owner_schema, oc.relname AS owner_name
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
       LEFT JOIN pg_class pc ON pc.oid = i.inhparent
       LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
       LEFT JOIN pg_depend d ON c.relkind = 'S' AND d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
       LEFT JOIN pg_class oc ON oc.oid = d.refobjid
       LEFT JOIN pg_namespace onm ON onm.oid = oc.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${USER_SCHEMA}
      ORDER BY n.nspname, c.relname`,
  );
  const roles = await run<{ rolname: string }>(client, context, 'SELECT rolname FROM pg_roles');
  return {
    schemas: schemas.map((r) => r.nspname),
    relations: rels.map((r): SourceRelation => {
      const rel: SourceRelation = { schema: r.schema!, name: r.name!, kind: r.kind! };
      if (r.parent_name) rel.parent = { schema: r.parent_schema!, name: r.parent_name };
      if (r.owner_name) rel.ownedBy = { schema: r.owner_schema!, name: r.owner_name };
      return rel;
    }),
    roles: roles.map((r) => r.rolname),
  };
}

/** A C-language function that no extension owns: its library may not exist on the destination. */
export interface CFunction {
  oid: number;
  identity: string;
  library: string;
}

/** User-created functions in language C that are not members of an extension (pg_depend 'e'). */
export async function readCFunctions(client: Client, context: string): Promise<CFunction[]> {
  const rows = await run<{ oid: number; identity: string; library: string | null }>(
    client,
    context,
    `SELECT p.oid::int8 AS oid, (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity, p.probin AS library
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
      WHERE l.lanname = 'c' AND p.oid >= 16384
        AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
  );
  return rows.map((r) => ({ oid: Number(r.oid), identity: r.identity, library: r.library ?? '' }));
}

/**
 * Extensions the objects of `schemas` use (their types, functions, operator classes ..., found
 * through pg_depend onto extension members), plus extensions installed in those schemas.
 * pg_dump leaves extensions out when -n is given, so these are selected explicitly with -e.
 */
export async function readSelectionExtensions(
  client: Client,
  context: string,
  schemas: string[],
): Promise<string[]> {
  const rows = await run<{ extname: string }>(
    client,
    context,
    `WITH sel AS (SELECT oid FROM pg_namespace WHERE nspname = ANY($1::text[])),
     objs AS (
       SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_constraint'::regclass, k.oid FROM pg_constraint k WHERE k.connamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_attrdef'::regclass, a.oid FROM pg_attrdef a
                   JOIN pg_class c ON c.oid = a.adrelid WHERE c.relnamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_rewrite'::regclass, r.oid FROM pg_rewrite r
                   JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace IN (SELECT oid FROM sel)
       UNION ALL SELECT 'pg_trigger'::regclass, g.oid FROM pg_trigger g
                   JOIN pg_class c ON c.oid = g.tgrelid WHERE c.relnamespace IN (SELECT oid FROM sel))
     SELECT e.extname FROM pg_extension e
      WHERE e.oid >= 16384
        AND (e.extnamespace IN (SELECT oid FROM sel)
             OR EXISTS (SELECT 1 FROM objs o
                          JOIN pg_depend d ON d.classid = o.classid AND d.objid = o.oid
                          JOIN pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid
                         WHERE m.deptype = 'e' AND m.refclassid = 'pg_extension'::regclass
                           AND m.refobjid = e.oid))
      ORDER BY e.extname`,
    [schemas],
  );
  return rows.map((r) => r.extname);
}

/**
 * Identifies the TOC entries that carry a catalog address, on the database the dump was taken
 * from, while it still has the same oids. Entries whose object vanished meanwhile are left out.
 */
export async function identifyEntries(
  client: Client,
  context: string,
  entries: readonly TocEntry[],
): Promise<Map<number, ObjectIdentity>> {
  const withOid = entries.filter((e) => e.catalogOid !== 0 && e.objectOid !== 0);
  const rows = await run<{
    dump_id: number;
    type: string | null;
    identity: string | null;
    names: string[] | null;
    args: string[] | null;
    index_table: string | null;
  }>(
    client,
    context,
    `SELECT x.dump_id, i.type, i.identity, a.object_names AS names, a.object_args AS args,
            (SELECT (pg_identify_object('pg_class'::regclass, ix.indrelid, 0)).identity
               FROM pg_index ix
              WHERE x.classid = 'pg_class'::regclass AND ix.indexrelid = x.objid) AS index_table
       FROM unnest($1::int4[], $2::oid[], $3::oid[]) AS x(dump_id, classid, objid)
       CROSS JOIN LATERAL pg_identify_object(x.classid, x.objid, 0) i
       CROSS JOIN LATERAL pg_identify_object_as_address(x.classid, x.objid, 0) a`,
    [withOid.map((e) => e.dumpId), withOid.map((e) => e.catalogOid), withOid.map((e) => e.objectOid)],
  );
  const out = new Map<number, ObjectIdentity>();
  for (const r of rows) {
    if (!r.type || !r.identity) continue;
    const id: ObjectIdentity = {
      type: r.type,
      identity: r.identity,
      names: r.names ?? [],
      args: r.args ?? [],
    };
    if (r.index_table) id.indexTable = r.index_table;
    out.set(Number(r.dump_id), id);
  }
  return out;
}

/** Names of extensions the destination server can install (pg_available_extensions). */
export async function readAvailableExtensions(client: Client, context: string): Promise<Set<string>> {
  const rows = await run<{ name: string }>(client, context, 'SELECT name FROM pg_available_extensions');
  return new Set(rows.map((r) => r.name));
}

/** Which of `schemas` and `extensions` already exist (on the destination). */
export async function readExisting(
  client: Client,
  context: string,
  schemas: string[],
  extensions: string[],
): Promise<{ schemas: Set<string>; extensions: Set<string> }> {
  const s = await run<{ nspname: string }>(
    client,
    context,
    'SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])',
    [schemas],
  );
  const e = await run<{ extname: string }>(
    client,
    context,
    'SELECT extname FROM pg_extension WHERE extname = ANY($1::text[])',
    [extensions],
  );
  return { schemas: new Set(s.map((r) => r.nspname)), extensions: new Set(e.map((r) => r.extname)) };
}

/** Address types of post-data objects whose existence can be checked by name. */
export const CHECKABLE_POST_DATA = new Set([
  'index',
  'table constraint',
  'trigger',
  'rule',
  'policy',
  'event trigger',
]);

/**
 * The post-data objects (by dump id) that already exist on the destination with the same
 * identity: same schema, table and name; for an index also the same table. Used to resume a
 * post-data restore that stopped half-way.
 */
export async function readExistingPostData(
  client: Client,
  context: string,
  objects: { dumpId: number; identity: ObjectIdentity }[],
): Promise<Set<number>> {
  const checkable = objects.filter((o) => CHECKABLE_POST_DATA.has(o.identity.type));
  if (checkable.length === 0) return new Set();
  const col = (i: number) => checkable.map((o) => o.identity.names[i] ?? null);
  const rows = await run<{ dump_id: number }>(
    client,
    context,
    `SELECT x.dump_id
       FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
            AS x(dump_id, type, n1, n2, n3, index_table)
      WHERE CASE x.type
        WHEN 'index' THEN EXISTS (
          SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_index i ON i.indexrelid = c.oid
           WHERE n.nspname = x.n1 AND c.relname = x.n2
             AND (pg_identify_object('pg_class'::regclass, i.indrelid, 0)).identity = x.index_table)
        WHEN 'table constraint' THEN EXISTS (
          SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = x.n1 AND c.relname = x.n2 AND k.conname = x.n3)
        WHEN 'trigger' THEN EXISTS (
          SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = x.n1 AND c.relname = x.n2 AND t.tgname = x.n3 AND NOT t.tgisinternal)
        WHEN 'rule' THEN EXISTS (
          SELECT 1 FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = x.n1 AND c.relname = x.n2 AND r.rulename = x.n3)
        WHEN 'policy' THEN EXISTS (
          SELECT 1 FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = x.n1 AND c.relname = x.n2 AND p.polname = x.n3)
        WHEN 'event trigger' THEN EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtname = x.n1)
        ELSE false END`,
    [
      checkable.map((o) => o.dumpId),
      checkable.map((o) => o.identity.type),
      col(0),
      col(1),
      col(2),
      checkable.map((o) => o.identity.indexTable ?? null),
    ],
  );
  return new Set(rows.map((r) => Number(r.dump_id)));
}
