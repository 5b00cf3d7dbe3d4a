/**
 * Exact-match patterns for pg_dump's -n/-N/-t/-T/-e options. Those options take psql patterns
 * (fe_utils processSQLNamePattern): outside double quotes, upper case folds to lower case, `*` and
 * `?` are wildcards, `.` separates schema from name and regular-expression characters pass through.
 * Inside double quotes none of that applies: every regular-expression metacharacter
 * (| * + ? ( ) [ ] { } . ^ $ \) is escaped, case is kept, and `""` stands for one `"`. So a name
 * wrapped in double quotes, with its own quotes doubled, matches that name and nothing else —
 * spaces, capitals, dots, wildcards and Unicode included.
 */
export function exactNamePattern(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new RangeError(`a name pattern needs a non-empty name, got ${JSON.stringify(name)}`);
  }
  if (name.includes('\0')) throw new RangeError('a name cannot contain a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** "schema"."table": matches exactly one relation (table, view, sequence ...) for -t / -T. */
export function exactRelationPattern(schema: string, relation: string): string {
  return `${exactNamePattern(schema)}.${exactNamePattern(relation)}`;
}
