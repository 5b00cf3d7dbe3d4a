import { quoteIdent, quoteLiteral, quoteQualified } from '@pgferry/pg';

/**
 * The statements a precheck item offers as its fix. Every name goes through quoteIdent (names
 * with quotes, spaces, capitals and Unicode come out as PostgreSQL reads them back); privilege
 * keywords come from closed unions, never from data. Each statement ends with ";". Pure.
 */

export type DatabasePrivilege = 'CONNECT' | 'CREATE' | 'TEMPORARY';
export type SchemaPrivilege = 'USAGE' | 'CREATE';
export type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'TRUNCATE';
export type SequencePrivilege = 'SELECT' | 'USAGE';

const ORDER: Record<string, number> = {
  CONNECT: 0,
  TEMPORARY: 1,
  USAGE: 2,
  CREATE: 3,
  SELECT: 4,
  INSERT: 5,
  UPDATE: 6,
  DELETE: 7,
  TRUNCATE: 8,
};

/** Distinct privileges in a fixed order, so the same gap always yields the same statement. */
function privilegeList(privileges: readonly string[]): string {
  // The checks offer a GRANT only for a privilege they found missing: an empty list is a pgferry bug.
  if (privileges.length === 0) throw new RangeError('a GRANT needs at least one privilege');
  return [...new Set(privileges)].sort((a, b) => ORDER[a] - ORDER[b]).join(', ');
}

export function grantOnDatabase(
  privileges: readonly DatabasePrivilege[],
  database: string,
  role: string,
): string {
  return `GRANT ${privilegeList(privileges)} ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)};`;
}

export function grantOnSchema(privileges: readonly SchemaPrivilege[], schema: string, role: string): string {
  return `GRANT ${privilegeList(privileges)} ON SCHEMA ${quoteIdent(schema)} TO ${quoteIdent(role)};`;
}

export function grantOnTable(
  privileges: readonly TablePrivilege[],
  schema: string,
  table: string,
  role: string,
): string {
  return `GRANT ${privilegeList(privileges)} ON TABLE ${quoteQualified(schema, table)} TO ${quoteIdent(role)};`;
}

export function grantOnSequence(
  privileges: readonly SequencePrivilege[],
  schema: string,
  sequence: string,
  role: string,
): string {
  return `GRANT ${privilegeList(privileges)} ON SEQUENCE ${quoteQualified(schema, sequence)} TO ${quoteIdent(role)};`;
}

/** Membership in `owner`: the member then has the owner's rights, e.g. to publish its tables. */
export function grantRole(owner: string, member: string): string {
  return `GRANT ${quoteIdent(owner)} TO ${quoteIdent(member)};`;
}

/** PostgreSQL 15 and later: lets a non-superuser SET a superuser-only parameter. */
export function grantSetParameter(parameter: string, role: string): string {
  // Parameter names are pgferry's constants, never data: another one is a pgferry bug.
  if (!/^[a-z_][a-z0-9_.]*$/.test(parameter)) throw new RangeError(`not a parameter name: ${parameter}`);
  return `GRANT SET ON PARAMETER ${parameter} TO ${quoteIdent(role)};`;
}

export function alterTableReplicaIdentity(
  schema: string,
  table: string,
  identity: { full: true } | { default: true } | { index: string },
): string {
  const target =
    'full' in identity
      ? 'FULL'
      : 'default' in identity
        ? 'DEFAULT'
        : `USING INDEX ${quoteIdent(identity.index)}`;
  return `ALTER TABLE ${quoteQualified(schema, table)} REPLICA IDENTITY ${target};`;
}

export function dropReplicationSlot(slot: string): string {
  return `SELECT pg_drop_replication_slot(${quoteLiteral(slot)});`;
}
