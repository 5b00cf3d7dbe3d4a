import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified, type NewTableRule } from '@pgferry/pg';

/**
 * Schema changes during the incremental phase (DESIGN phase 5): the task installs, on the
 * source, an event trigger that records every DDL statement touching a selected schema into a
 * table of its own. That table is in the task's publication, so each statement reaches the
 * stream inside its own transaction, in order with the rows around it, and the applier runs it
 * on the destination at that point. Nothing is skipped: a statement that cannot be applied
 * stops the task with the statement and the reason.
 *
 * Objects on the source, all named after the task so tasks never share one and `release`
 * knows exactly what to drop: schema `pgferry` (shared, created if missing), table
 * `pgferry.ddl_<task>`, function `pgferry.ddl_<task>_capture()`, event triggers
 * `pgferry_<task>_ddl` (ddl_command_end) and `pgferry_<task>_drop` (sql_drop).
 */
export const DDL_SCHEMA = 'pgferry';

export interface DdlObjects {
  table: string;
  function: string;
  commandTrigger: string;
  dropTrigger: string;
}

export function ddlObjects(task: string): DdlObjects {
  return {
    table: `ddl_${task}`,
    function: `ddl_${task}_capture`,
    commandTrigger: `pgferry_${task}_ddl`,
    dropTrigger: `pgferry_${task}_drop`,
  };
}

/** One captured statement, as the capture reads it from the stream (or the table). */
export interface DdlEvent {
  id: string;
  /** Command tag: 'ALTER TABLE', 'CREATE TABLE', 'DROP TABLE', ... */
  tag: string;
  /** Schema-qualified names of the objects the statement created, altered or dropped. */
  objects: string[];
  /** Schemas those objects live in (selected ones only). */
  schemas: string[];
  /**
   * The query string the client sent (current_query()): the statement, or a string of several
   * of which it is one (see pg-ddl-splitter.ts).
   */
  command: string;
  /** Which top-level statement of `command` with this tag it was: 1 for the first. */
  ordinal: number;
  /** Run by a function, procedure, DO block or trigger, not sent as a statement of `command`. */
  nested: boolean;
  /**
   * The schemas the source session's search_path resolved to when it ran (current_schemas,
   * quoted, `$user` and missing schemas resolved away): unqualified names resolve the same way
   * on the destination. Rows captured by an earlier pgferry hold the search_path setting itself.
   */
  searchPath: string;
  txid: string;
}

/**
 * Whose statements are captured: those on objects of the listed schemas, or (`allBut`, a task
 * with no include, which takes every user schema, new ones too) on objects of every schema but
 * the system ones, pgferry's and the listed ones.
 */
export type DdlScope = readonly string[] | { allBut: readonly string[] };

/**
 * Creates or updates the capture objects for `schemas` (idempotent: run again when the
 * selection changes). Needs a superuser on the source (event triggers are superuser-only). The
 * function is SECURITY DEFINER so DDL by any role is recorded (and never fails for want of a
 * grant on the task's table). It cannot pin its own search_path (it records the caller's), so
 * it names its table schema-qualified and uses only pg_catalog functions and operators, which
 * resolve before any user schema. With `newTables`, a table created later in a schema the task
 * takes whole (see newTableRule) is added to the publication by the same trigger.
 */
export async function installDdlCapture(
  client: Client,
  task: string,
  schemas: DdlScope,
  newTables?: { publication: string; rule: NewTableRule },
): Promise<void> {
  const o = ddlObjects(task);
  const table = quoteQualified(DDL_SCHEMA, o.table);
  const fn = quoteQualified(DDL_SCHEMA, o.function);
  const textArray = (items: readonly string[]) =>
    items.length ? `ARRAY[${items.map(quoteLiteral).join(', ')}]::text[]` : `'{}'::text[]`;
  /** SQL: is schema `col` one whose statements are captured (or whose new tables are taken)? */
  const within = (col: string, scope: DdlScope) =>
    'allBut' in scope
      ? `(${col} NOT IN ('pg_catalog', 'information_schema', ${quoteLiteral(DDL_SCHEMA)}) AND ${col} NOT LIKE 'pg\\_%' AND NOT ${col} = ANY (${textArray(scope.allBut)}))`
      : `${col} = ANY (${textArray(scope)})`;
  // A table created in a schema the task takes whole joins the publication in the statement's
  // own transaction, so every row written to it from then on (in that transaction too) is in the
  // stream after the statement that created it. Only tables with a primary key (a replica
  // identity index or FULL can only be set after the CREATE, too late for its first rows): adding
  // a table without one would make UPDATE and DELETE fail on the source; the capture names such
  // a table instead.
  const follow = newTables
    ? `
      IF TG_EVENT = 'ddl_command_end' AND TG_TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
         AND EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = ${quoteLiteral(newTables.publication)}) THEN
        FOR rel IN
          SELECT n.nspname, c.relname
            FROM pg_event_trigger_ddl_commands() d
            JOIN pg_catalog.pg_class c ON c.oid = d.objid
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p'
             AND ${within('n.nspname', newTables.rule.schemas ?? { allBut: newTables.rule.excludedSchemas })}
             AND NOT ${quoteLiteral(JSON.stringify(newTables.rule.excluded))}::jsonb
                     @> pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('schema', n.nspname::text, 'table', c.relname::text))
             AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr
                               JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
                              WHERE p.pubname = ${quoteLiteral(newTables.publication)} AND pr.prrelid = c.oid)
        LOOP
          EXECUTE pg_catalog.format('ALTER PUBLICATION %I ADD TABLE %I.%I', ${quoteLiteral(newTables.publication)}, rel.nspname, rel.relname);
        END LOOP;
      END IF;`
    : '';
  // One row per top-level statement: a statement creating a table reports the table, its
  // sequences and indexes as separate commands of one firing, and a drop fires twice (sql_drop,
  // then ddl_command_end). The row holds the whole query string (all the trigger can see) and
  // which statement of it this was: its tag and its ordinal among the string's top-level
  // statements of that tag, counted in a setting of the session that lasts one query string
  // (statement_timestamp() is the same for every statement of a simple-protocol string, and
  // new for the next). A statement run by a function, procedure, DO block or trigger (the
  // PL/pgSQL context has more than this function's own line) is recorded as nested: the
  // splitter (pg-ddl-splitter.ts) refuses it rather than replay its caller.
  //
  // SECURITY DEFINER runs with the caller's search_path: the function reads what it needs of
  // it first (with schema-qualified calls only), then pins it to pg_catalog, so no schema of
  // the caller can put a function or operator in its way, and gives it back on the way out
  // (on an error the transaction's rollback does).
  const counter = `pgferry.ddl_${task}`;
  const body = `
    DECLARE
      objs text[];
      nsps text[];
      q text;
      caller_path text;
      caller_schemas name[];
      ctx text;
      is_nested boolean;
      stmt_key text;
      counts jsonb;
      n int;
      rel record;
    BEGIN
      caller_path := pg_catalog.current_setting('search_path');
      caller_schemas := pg_catalog.current_schemas(false);
      q := pg_catalog.current_query();
      GET DIAGNOSTICS ctx = PG_CONTEXT;
      PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
      -- The function's own ALTER PUBLICATION fires the trigger again: nothing to record.
      IF TG_TAG <> 'ALTER PUBLICATION' THEN
        is_nested := strpos(ctx, E'\n') > 0;
        stmt_key := statement_timestamp()::text || ' ' || md5(q);
        counts := nullif(current_setting(${quoteLiteral(counter)}, true), '')::jsonb;
        IF counts IS NULL OR counts->>'k' IS DISTINCT FROM stmt_key THEN
          counts := jsonb_build_object('k', stmt_key, 'n', '{}'::jsonb);
        END IF;
        n := coalesce((counts->'n'->>TG_TAG)::int, 0) + 1;
        -- Counted once per statement, at ddl_command_end (a drop's sql_drop comes first and
        -- takes the same ordinal); an extension script's statements are not the string's.
        IF TG_EVENT = 'ddl_command_end' AND NOT is_nested
           AND NOT coalesce((SELECT bool_and(in_extension) FROM pg_event_trigger_ddl_commands()), false) THEN
          PERFORM set_config(${quoteLiteral(counter)}, jsonb_set(counts, ARRAY['n', TG_TAG], to_jsonb(n))::text, false);
        END IF;
        -- A schema itself (CREATE, ALTER, DROP SCHEMA) counts as in its own schema.
        IF TG_EVENT = 'sql_drop' THEN
          SELECT array_agg(DISTINCT object_identity), array_agg(DISTINCT s)
            INTO objs, nsps
            FROM (SELECT object_identity, original,
                         coalesce(schema_name, CASE WHEN object_type = 'schema' THEN object_name END) AS s
                    FROM pg_event_trigger_dropped_objects()) d
           WHERE ${within('s', schemas)} AND original;
        ELSE
          SELECT array_agg(DISTINCT object_identity), array_agg(DISTINCT s)
            INTO objs, nsps
            FROM (SELECT object_identity, in_extension,
                         coalesce(schema_name, CASE WHEN object_type = 'schema'
                           THEN (SELECT nspname FROM pg_namespace WHERE oid = objid) END) AS s
                    FROM pg_event_trigger_ddl_commands()) d
           WHERE ${within('s', schemas)} AND NOT in_extension;
        END IF;
        IF objs IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM ${table}
              WHERE txid = txid_current() AND statement_at = statement_timestamp() AND command = q
                AND tag = TG_TAG AND ordinal = n AND nested = is_nested) THEN
          INSERT INTO ${table} (tag, objects, schemas, command, search_path, ordinal, nested, statement_at)
            VALUES (TG_TAG, objs, nsps, q,
                    array_to_string(ARRAY(SELECT quote_ident(x) FROM unnest(caller_schemas) AS x), ', '),
                    n, is_nested, statement_timestamp());
        END IF;${follow}
      END IF;
      PERFORM pg_catalog.set_config('search_path', caller_path, true);
    END`;
  // Names reach the body as quoted literals and identifiers; the dollar quote around it is one
  // the body does not contain, so no name can end it.
  let quote = '$pgferry$';
  for (let i = 1; body.includes(quote); i++) quote = `$pgferry${i}$`;
  try {
    await client.query('BEGIN');
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(DDL_SCHEMA)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${table} (
         id bigserial PRIMARY KEY,
         txid bigint NOT NULL DEFAULT txid_current(),
         at timestamptz NOT NULL DEFAULT now(),
         tag text NOT NULL,
         objects text[] NOT NULL,
         schemas text[] NOT NULL,
         command text NOT NULL,
         search_path text NOT NULL,
         ordinal int NOT NULL DEFAULT 1,
         nested boolean NOT NULL DEFAULT false,
         statement_at timestamptz)`,
    );
    // Added by pgferry versions after the table's first: a task installed before gets them here.
    for (const column of [
      'ordinal int NOT NULL DEFAULT 1',
      'nested boolean NOT NULL DEFAULT false',
      'statement_at timestamptz',
    ])
      await client.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${column}`);
    await client.query(`CREATE INDEX IF NOT EXISTS ${quoteIdent(`${o.table}_txid`)} ON ${table} (txid)`);
    await client.query(
      `CREATE OR REPLACE FUNCTION ${fn}() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS ${quote}${body}${quote}`,
    );
    for (const [name, event] of [
      [o.commandTrigger, 'ddl_command_end'],
      [o.dropTrigger, 'sql_drop'],
    ] as const) {
      const exists = await client.query('SELECT 1 FROM pg_event_trigger WHERE evtname = $1', [name]);
      if (exists.rowCount === 0)
        await client.query(`CREATE EVENT TRIGGER ${quoteIdent(name)} ON ${event} EXECUTE FUNCTION ${fn}()`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(
      err,
      `installing the DDL capture of task ${task} on the source (event triggers need a superuser)`,
    );
  }
}

/**
 * Drops what installDdlCapture created. Idempotent. Returns what it dropped; the schema
 * `pgferry` goes too when nothing else is left in it.
 */
export async function removeDdlCapture(client: Client, task: string): Promise<string[]> {
  const o = ddlObjects(task);
  const dropped: string[] = [];
  try {
    await client.query('BEGIN');
    for (const name of [o.commandTrigger, o.dropTrigger]) {
      const r = await client.query('SELECT 1 FROM pg_event_trigger WHERE evtname = $1', [name]);
      if (r.rowCount) {
        await client.query(`DROP EVENT TRIGGER ${quoteIdent(name)}`);
        dropped.push(`event trigger ${quoteIdent(name)}`);
      }
    }
    const fn = quoteQualified(DDL_SCHEMA, o.function);
    if ((await client.query(`SELECT to_regprocedure($1) IS NOT NULL AS has`, [`${fn}()`])).rows[0].has) {
      await client.query(`DROP FUNCTION ${fn}()`);
      dropped.push(`function ${fn}()`);
    }
    const table = quoteQualified(DDL_SCHEMA, o.table);
    if ((await client.query(`SELECT to_regclass($1) IS NOT NULL AS has`, [table])).rows[0].has) {
      await client.query(`DROP TABLE ${table}`);
      dropped.push(`table ${table}`);
    }
    const empty = await client.query(
      `SELECT n.oid FROM pg_namespace n WHERE n.nspname = $1
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid)
          AND NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = n.oid)
          AND NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.typnamespace = n.oid)`,
      [DDL_SCHEMA],
    );
    if (empty.rowCount) {
      await client.query(`DROP SCHEMA ${quoteIdent(DDL_SCHEMA)}`);
      dropped.push(`schema ${quoteIdent(DDL_SCHEMA)}`);
    }
    await client.query('COMMIT');
    return dropped;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, `removing the DDL capture of task ${task} from the source`);
  }
}

/** Captured statements after `afterId`, in order (for catch-up reads and tests). */
export async function readDdlEvents(client: Client, task: string, afterId = '0'): Promise<DdlEvent[]> {
  const { rows } = await client.query(
    // ORDER BY d.id, the bigint: a bare `id` would be the output column, the text.
    `SELECT d.id::text AS id, tag, objects, schemas, command, ordinal, nested, search_path AS "searchPath", txid::text
       FROM ${quoteQualified(DDL_SCHEMA, ddlObjects(task).table)} d
      WHERE d.id > $1::bigint ORDER BY d.id`,
    [afterId],
  );
  return rows as DdlEvent[];
}

/** Is `schema`.`table` the task's DDL table (so the stream turns its inserts into DDL events)? */
export function isDdlTable(task: string, schema: string, table: string): boolean {
  return schema === DDL_SCHEMA && table === ddlObjects(task).table;
}

/**
 * The captured statement in a row of the task's DDL table as the stream delivers it (text
 * values in the table's column order, by name), or null when a column is missing.
 */
export function ddlEventFromRow(
  columns: readonly string[],
  values: ReadonlyArray<string | null>,
): DdlEvent | null {
  const get = (name: string) => {
    const i = columns.indexOf(name);
    return i < 0 ? null : values[i];
  };
  const id = get('id');
  const tag = get('tag');
  const command = get('command');
  if (id === null || tag === null || command === null) return null;
  return {
    id,
    tag,
    objects: parseTextArray(get('objects') ?? '{}'),
    schemas: parseTextArray(get('schemas') ?? '{}'),
    command,
    ordinal: Number(get('ordinal') ?? 1),
    nested: get('nested') === 't',
    searchPath: get('search_path') ?? '',
    txid: get('txid') ?? '',
  };
}

/** A one-dimensional text[] in PostgreSQL's output format: {a,"b c","d\"e"} -> [a, b c, d"e]. */
export function parseTextArray(text: string): string[] {
  if (text.length < 2 || text[0] !== '{' || text[text.length - 1] !== '}')
    throw new Error(`not a text array: ${text}`);
  const out: string[] = [];
  let i = 1;
  const end = text.length - 1;
  while (i < end) {
    let item = '';
    if (text[i] === '"') {
      i++;
      while (i < end && text[i] !== '"') {
        if (text[i] === '\\') i++;
        item += text[i++];
      }
      i++; // closing quote
      out.push(item);
    } else {
      while (i < end && text[i] !== ',') item += text[i++];
      out.push(item);
    }
    if (text[i] === ',') i++;
  }
  return out;
}
