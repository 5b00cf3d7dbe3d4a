/**
 * Identifier and literal quoting. Every name pgferry puts in SQL text goes through quoteIdent, so
 * names with quotes, spaces, capitals, dots and Unicode work. Values go as bind parameters; the
 * literal quoter exists only for the few statements that take no parameters (DDL, replication
 * commands) and assumes standard_conforming_strings = on, which pgferry sets on every session.
 */
export function quoteIdent(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new RangeError(`an identifier must be a non-empty string, got ${JSON.stringify(name)}`);
  }
  if (name.includes('\0')) throw new RangeError('an identifier cannot contain a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** "schema"."name" */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new RangeError('a string literal cannot contain a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A list of quoted identifiers joined by ", ". */
export function quoteIdentList(names: readonly string[]): string {
  return names.map(quoteIdent).join(', ');
}
