import type { TaskSpec } from '@pgferry/core';
import { quoteIdent, quoteQualified } from '@pgferry/pg';
import type { SelectedTable } from '@pgferry/pg';
import { listNames, plural } from './precheck-format';
import {
  grantOnDatabase,
  grantOnSchema,
  grantOnSequence,
  grantOnTable,
  grantRole,
  grantSetParameter,
  type SchemaPrivilege,
  type TablePrivilege,
} from './grant-statements';
import {
  CONTROL_SCHEMA,
  CONTROL_TABLES,
  relKey,
  type DestinationFacts,
  type SourceFacts,
} from './precheck-facts';
import type { PrecheckItem } from './precheck-report';

/**
 * The privileges each phase needs, read with has_*_privilege (nothing is tried). Every failed
 * item names the user, the object, the missing privilege, why the phase needs it, and the GRANT
 * that fixes it (to be run by the object's owner or a superuser). One passed item per side when
 * nothing is missing. Pure.
 */

const privilegeItem = (
  side: 'source' | 'destination',
  key: string,
  object: string,
  message: string,
  fix: string,
): PrecheckItem => ({
  id: `privileges:${side}:${key}`,
  name: `${side} privileges`,
  level: 'failed',
  object,
  message,
  fix,
});

export function checkSourcePrivileges(spec: TaskSpec, source: SourceFacts): PrecheckItem[] {
  const types = spec.migrationTypes;
  const user = source.info.user;
  const who = `source user ${quoteIdent(user)}`;
  const db = source.db.database;
  const items: PrecheckItem[] = [];
  const tables = source.selection.tables;
  if (!source.db.canConnect)
    items.push(
      privilegeItem(
        'source',
        'connect',
        quoteIdent(db),
        `${who} lacks CONNECT on database ${quoteIdent(db)}: the snapshot workers and the capture open sessions there; grant it`,
        grantOnDatabase(['CONNECT'], db, user),
      ),
    );
  for (const [schema, usage] of source.schemaUsage) {
    if (usage) continue;
    items.push(
      privilegeItem(
        'source',
        `usage:${quoteIdent(schema)}`,
        quoteIdent(schema),
        `${who} lacks USAGE on schema ${quoteIdent(schema)}: the selected tables in it cannot be reached; grant it`,
        grantOnSchema(['USAGE'], schema, user),
      ),
    );
  }
  const reads = [types.schema && 'the schema dump locks it', types.full && 'the snapshot reads its rows'];
  const why = reads.filter(Boolean).join(' and ');
  for (const t of tables) {
    const f = source.tables.get(relKey(t.schema, t.table));
    if (!why || !f || f.canSelect) continue;
    const name = quoteQualified(t.schema, t.table);
    items.push(
      privilegeItem(
        'source',
        `select:${name}`,
        name,
        `${who} lacks SELECT on table ${name}: ${why}; grant it`,
        grantOnTable(['SELECT'], t.schema, t.table, user),
      ),
    );
  }
  if (types.incremental) items.push(...incrementalSourceItems(source, tables, who));
  if (items.length === 0) {
    const parts = [`CONNECT on ${quoteIdent(db)}`, `USAGE on ${plural(source.schemaUsage.size, 'schema')}`];
    if (why) parts.push(`SELECT on ${plural(tables.length, 'table')}`);
    if (types.incremental) parts.push('CREATE on the database, ownership of the published tables');
    items.push({
      id: 'privileges:source',
      name: 'source privileges',
      level: 'passed',
      message: `${who} has ${parts.join(', ')}`,
    });
  }
  return items;
}

/**
 * Incremental migration creates a publication FOR TABLE the selected tables (PostgreSQL allows
 * that to the tables' owner only, and needs CREATE on the database, where pgferry's heartbeat
 * schema goes too) and reads owned sequences at cutover.
 */
function incrementalSourceItems(source: SourceFacts, tables: SelectedTable[], who: string): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  const user = source.info.user;
  const db = source.db.database;
  if (!source.db.canCreate)
    items.push(
      privilegeItem(
        'source',
        'create',
        quoteIdent(db),
        `${who} lacks CREATE on database ${quoteIdent(db)}: incremental migration creates its publication and the ${quoteIdent(CONTROL_SCHEMA)} heartbeat schema there; grant it`,
        grantOnDatabase(['CREATE'], db, user),
      ),
    );
  const notOwned = new Map<string, string[]>();
  for (const t of tables) {
    const f = source.tables.get(relKey(t.schema, t.table));
    if (!f || f.ownedByUser) continue;
    notOwned.set(f.owner, [...(notOwned.get(f.owner) ?? []), quoteQualified(t.schema, t.table)]);
  }
  for (const [owner, names] of notOwned) {
    items.push(
      privilegeItem(
        'source',
        `owner:${quoteIdent(owner)}`,
        quoteIdent(owner),
        `${who} does not own ${names.length === 1 ? 'table' : plural(names.length, 'table')} ${listNames(names, 10)} (owner ${quoteIdent(owner)}): incremental migration publishes them with CREATE PUBLICATION ... FOR TABLE, which PostgreSQL allows only to the owner; make the user a member of the owner role, or run the task as a superuser`,
        grantRole(owner, user),
      ),
    );
  }
  for (const t of tables) {
    for (const seq of source.tables.get(relKey(t.schema, t.table))?.ownedSequences ?? []) {
      if (seq.canSelect) continue;
      const name = quoteQualified(seq.schema, seq.name);
      items.push(
        privilegeItem(
          'source',
          `sequence:${name}`,
          name,
          `${who} lacks SELECT on sequence ${name} (owned by ${quoteQualified(t.schema, t.table)}): its value is read at cutover to set the destination's; grant it`,
          grantOnSequence(['SELECT'], seq.schema, seq.name, user),
        ),
      );
    }
  }
  return items;
}

/**
 * The destination user needs CREATE on the database (CREATE SCHEMA IF NOT EXISTS for the control
 * schema checks it even when the schema exists), USAGE on existing target schemas and CREATE on
 * them when the schema phase creates tables there, read and write on the control tables, and,
 * for data phases, TEMPORARY (the applier stages rows in temporary tables), SET on
 * session_replication_role, and SELECT (upsert) plus INSERT, UPDATE, DELETE, TRUNCATE on target
 * tables that already exist.
 */
export function checkDestinationPrivileges(
  spec: TaskSpec,
  destination: DestinationFacts,
  targets: SelectedTable[],
): PrecheckItem[] {
  const types = spec.migrationTypes;
  const data = types.full || types.incremental;
  const user = destination.info.user;
  const who = `destination user ${quoteIdent(user)}`;
  const db = destination.db.database;
  const items: PrecheckItem[] = [];
  if (!destination.db.canCreate)
    items.push(
      privilegeItem(
        'destination',
        'create',
        quoteIdent(db),
        `${who} lacks CREATE on database ${quoteIdent(db)}: pgferry keeps its control schema ${quoteIdent(CONTROL_SCHEMA)} there${types.schema ? ' and the schema migration creates the target schemas' : ''}; grant it`,
        grantOnDatabase(['CREATE'], db, user),
      ),
    );
  if (data && !destination.db.canTemp)
    items.push(
      privilegeItem(
        'destination',
        'temporary',
        quoteIdent(db),
        `${who} lacks TEMPORARY on database ${quoteIdent(db)}: the applier stages rows in temporary tables; grant it`,
        grantOnDatabase(['TEMPORARY'], db, user),
      ),
    );
  if (data && !destination.canSetReplicationRole)
    items.push(
      privilegeItem(
        'destination',
        'session_replication_role',
        'session_replication_role',
        `${who} cannot set session_replication_role: the applier sets it to replica so that destination triggers and foreign keys do not fire twice; ${destination.info.major >= 15 ? 'grant SET on the parameter, or run the task as a superuser' : `PostgreSQL ${destination.info.major} allows that to superusers only: run the task as a superuser`}`,
        destination.info.major >= 15
          ? grantSetParameter('session_replication_role', user)
          : `ALTER ROLE ${quoteIdent(user)} SUPERUSER; -- or use a superuser in the task spec`,
      ),
    );
  const schemaNeeds = new Map<string, SchemaPrivilege[]>([[CONTROL_SCHEMA, ['USAGE', 'CREATE']]]);
  for (const t of targets) schemaNeeds.set(t.targetSchema, types.schema ? ['USAGE', 'CREATE'] : ['USAGE']);
  for (const [schema, needs] of schemaNeeds) {
    const f = destination.schemas.get(schema);
    if (!f) continue;
    const missing = needs.filter((p) => (p === 'USAGE' ? !f.usage : !f.create));
    if (missing.length === 0) continue;
    const why =
      schema === CONTROL_SCHEMA
        ? 'pgferry keeps its task state there'
        : missing.includes('CREATE')
          ? 'the schema migration creates the tables in it'
          : 'the applier writes the tables in it';
    items.push(
      privilegeItem(
        'destination',
        `schema:${quoteIdent(schema)}`,
        quoteIdent(schema),
        `${who} lacks ${missing.join(' and ')} on schema ${quoteIdent(schema)} (owner ${quoteIdent(f.owner)}): ${why}; grant it`,
        grantOnSchema(missing, schema, user),
      ),
    );
  }
  const tableNeeds: Array<{ schema: string; table: string; needs: TablePrivilege[]; why: string }> = [
    ...CONTROL_TABLES.map((table) => ({
      schema: CONTROL_SCHEMA,
      table,
      needs: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as TablePrivilege[],
      why: 'pgferry records the task state in it',
    })),
  ];
  if (data)
    for (const t of targets)
      tableNeeds.push({
        schema: t.targetSchema,
        table: t.targetTable,
        needs: ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'],
        why: 'the applier upserts, deletes and truncates its rows',
      });
  for (const { schema, table, needs, why } of tableNeeds) {
    const f = destination.relations.get(relKey(schema, table));
    if (!f || (f.kind !== 'r' && f.kind !== 'p')) continue;
    const missing = needs.filter((p) => !f.privileges[p]);
    if (missing.length === 0) continue;
    const name = quoteQualified(schema, table);
    items.push(
      privilegeItem(
        'destination',
        `table:${name}`,
        name,
        `${who} lacks ${missing.join(', ')} on existing table ${name}: ${why}; grant ${missing.length === 1 ? 'it' : 'them'}`,
        grantOnTable(missing, schema, table, user),
      ),
    );
  }
  if (items.length === 0)
    items.push({
      id: 'privileges:destination',
      name: 'destination privileges',
      level: 'passed',
      message: `${who} has CREATE on ${quoteIdent(db)}${data ? ', TEMPORARY, SET session_replication_role' : ''} and the privileges on the existing target schemas and tables`,
    });
  return items;
}
