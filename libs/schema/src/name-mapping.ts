import { randomBytes } from 'node:crypto';
import type { Client } from 'pg';
import { ObjectError, PermissionError } from '@pgferry/core';
import {
  classifyPgError,
  connect,
  describeEndpoint,
  type Endpoint,
  quoteIdent,
  quoteLiteral,
  quoteQualified,
} from '@pgferry/pg';
import type { NameCase } from '@pgferry/core';
import type { SchemaRename, TableRename } from './pg-dump-selection';
import { caseColumns, caseOf, caseRelations, dropUnlistedColumns, type ColumnList } from './column-shaping';

/**
 * Name mapping. pg_restore cannot rename, and rewriting the SQL text of a dump is not safe (names
 * also occur inside expressions, strings and function bodies). So renames are done by the server:
 * the selected schema is restored, without data, into a scratch database on the destination
 * server, renamed there with ALTER TABLE / ALTER SCHEMA ... RENAME (which updates every
 * reference the catalog tracks by oid: views, materialized views, foreign keys, indexes,
 * triggers, rules, policies, defaults, sequence ownership, SQL-standard function bodies), dumped
 * again, and the scratch database dropped. That second dump carries the destination names and
 * is what pre-data and post-data restore. Not followed: names inside function bodies written as
 * strings (plpgsql, `AS $$...$$` SQL functions) and dynamic SQL, which the server does not parse
 * for dependencies; those functions keep referring to the source names.
 */

export interface ScratchDatabase {
  endpoint: Endpoint;
  name: string;
}

/**
 * Creates an empty scratch database on the destination server (TEMPLATE template0, with the
 * destination database's encoding and locale), runs `fn` with it and drops it afterwards,
 * whatever `fn` does. Needs CREATEDB on the destination server.
 */
export async function withScratchDatabase<T>(
  destination: Endpoint,
  fn: (scratch: ScratchDatabase) => Promise<T>,
): Promise<T> {
  const name = `pgferry_scratch_${randomBytes(6).toString('hex')}`;
  const context = `creating scratch database ${name} on destination ${describeEndpoint(destination)}`;
  const admin = await connect(destination, 'destination', { applicationName: 'pgferry schema' });
  let serverVersion = 0;
  try {
    const { rows } = await admin.query(
      `SELECT pg_encoding_to_char(encoding) AS encoding, datcollate, datctype,
              current_setting('server_version_num')::int AS version
         FROM pg_database WHERE datname = current_database()`,
    );
    serverVersion = rows[0].version;
    await admin.query(
      `CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0 ENCODING ${quoteLiteral(rows[0].encoding)}` +
        ` LC_COLLATE ${quoteLiteral(rows[0].datcollate)} LC_CTYPE ${quoteLiteral(rows[0].datctype)}`,
    );
  } catch (err) {
    const classified = classifyPgError(err, context);
    await admin.end().catch(() => undefined);
    if (classified instanceof PermissionError) {
      throw new PermissionError(
        `${context}: renaming schemas or tables (renameTo / renameTables) needs a scratch database; grant it with ALTER ROLE ${quoteIdent(destination.user)} CREATEDB, or remove the renames from the task spec`,
        { cause: err, code: '42501' },
      );
    }
    throw classified;
  }
  try {
    return await fn({ endpoint: { ...destination, database: name }, name });
  } finally {
    const force = serverVersion >= 130000 ? ' WITH (FORCE)' : '';
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${force}`).catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

const RENAME_KIND: Record<string, string> = {
  r: 'TABLE',
  p: 'TABLE',
  f: 'FOREIGN TABLE',
  v: 'VIEW',
  m: 'MATERIALIZED VIEW',
};

/**
 * Applies the renames in one transaction, in the scratch database: tables (within their source
 * schema) first, then schemas. Each rename goes through a temporary name, so swaps and chains
 * (a -> b, b -> a) work. A target schema that exists in the scratch database without being
 * restored there (its own empty `public`) is dropped first, so that a schema can be mapped onto
 * `public`; on the destination the existing schema is then reused. All or nothing; errors name
 * the object and the wanted name.
 */
export async function applyRenames(
  client: Client,
  context: string,
  restoredSchemas: readonly string[],
  schemaRenames: readonly SchemaRename[],
  tableRenames: readonly TableRename[],
  shape: { columnLists?: readonly ColumnList[]; nameCase?: NameCase } = {},
): Promise<void> {
  const tmp = (i: number) => `pgferry_rename_${i}_${randomBytes(4).toString('hex')}`;
  let step = '';
  const nameCase = shape.nameCase && shape.nameCase !== 'source' ? shape.nameCase : undefined;
  try {
    await client.query('BEGIN');
    // Column lists and column case first: both name source columns of source tables.
    await dropUnlistedColumns(client, shape.columnLists ?? [], (what) => (step = what));
    if (nameCase) {
      await caseColumns(client, restoredSchemas, nameCase, (what) => (step = what));
      const explicit = new Set(tableRenames.map((t) => `${t.schema}\u0000${t.from}`));
      tableRenames = [...tableRenames, ...(await caseRelations(client, restoredSchemas, nameCase, explicit))];
      const renamed = new Set(schemaRenames.map((s) => s.from));
      schemaRenames = [
        ...schemaRenames,
        ...restoredSchemas
          .filter((s) => !renamed.has(s) && caseOf(s, nameCase) !== s)
          .map((s) => ({ from: s, to: caseOf(s, nameCase) })),
      ];
    }
    for (const s of schemaRenames) {
      if (restoredSchemas.includes(s.to)) continue;
      step = `making room for schema ${quoteIdent(s.to)} (the scratch database's own, empty one)`;
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(s.to)} RESTRICT`);
    }
    const tables = tableRenames.map((t, i) => ({ ...t, temp: tmp(i), what: RENAME_KIND[t.kind] ?? 'TABLE' }));
    for (const t of tables) {
      step = `renaming ${t.what.toLowerCase()} ${quoteQualified(t.schema, t.from)} to ${quoteIdent(t.to)}`;
      await client.query(
        `ALTER ${t.what} ${quoteQualified(t.schema, t.from)} RENAME TO ${quoteIdent(t.temp)}`,
      );
    }
    for (const t of tables) {
      step = `renaming ${t.what.toLowerCase()} ${quoteQualified(t.schema, t.from)} to ${quoteIdent(t.to)}`;
      await client.query(`ALTER ${t.what} ${quoteQualified(t.schema, t.temp)} RENAME TO ${quoteIdent(t.to)}`);
    }
    const schemas = schemaRenames.map((s, i) => ({ ...s, temp: tmp(tables.length + i) }));
    for (const s of schemas) {
      step = `renaming schema ${quoteIdent(s.from)} to ${quoteIdent(s.to)}`;
      await client.query(`ALTER SCHEMA ${quoteIdent(s.from)} RENAME TO ${quoteIdent(s.temp)}`);
    }
    for (const s of schemas) {
      step = `renaming schema ${quoteIdent(s.from)} to ${quoteIdent(s.to)}`;
      await client.query(`ALTER SCHEMA ${quoteIdent(s.temp)} RENAME TO ${quoteIdent(s.to)}`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    const classified = classifyPgError(err, `${context}: ${step}`);
    if (classified instanceof ObjectError && classified.code === '42P06') {
      throw new ObjectError(
        `${classified.message}; a renamed schema cannot be merged into another selected schema: choose another renameTo`,
        { cause: err, code: '42P06' },
      );
    }
    throw classified;
  }
}
