import { SpecError } from '@pgferry/core';

/**
 * Identifier and literal quoting. Every name pgferry puts in SQL text goes through quoteIdent, so
 * names with quotes, spaces, capitals, dots and Unicode work. Values go as bind parameters; the
 * literal quoter exists only for the few statements that take no parameters (DDL, replication
 * commands) and assumes standard_conforming_strings = on, which pgferry sets on every session.
 */
export function quoteIdent(name: string): string {
  // Names reach here as strings (the spec's validator types them): another type is a pgferry bug.
  if (typeof name !== 'string') throw new TypeError(`an identifier must be a string, got ${typeof name}`);
  // PostgreSQL's catalog holds neither, so a bad name is one a user gave.
  if (name.length === 0)
    throw new SpecError([
      'an identifier cannot be empty: give the schema, table or role a name in the task spec',
    ]);
  if (name.includes('\0'))
    throw new SpecError([
      `an identifier cannot contain a NUL character (${JSON.stringify(name)}): correct the name in the task spec`,
    ]);
  return `"${name.replace(/"/g, '""')}"`;
}

/** "schema"."name" */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export function quoteLiteral(value: string): string {
  // PostgreSQL text cannot hold NUL and the server never sends one: the value is a user's. Not
  // quoted in the message: a literal may be a setting a user would not want in a log.
  if (value.includes('\0'))
    throw new SpecError([
      'a string literal cannot contain a NUL character: correct the name or setting in the task spec',
    ]);
  return `'${value.replace(/'/g, "''")}'`;
}

/** A list of quoted identifiers joined by ", ". */
export function quoteIdentList(names: readonly string[]): string {
  return names.map(quoteIdent).join(', ');
}
