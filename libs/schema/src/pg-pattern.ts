import { SpecError } from '@pgferry/core';

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
  // Names reach here as strings (the spec's validator types them): another type is a pgferry bug.
  if (typeof name !== 'string') throw new TypeError(`a name pattern needs a string, got ${typeof name}`);
  // PostgreSQL's catalog holds neither, so a bad name is one a user gave.
  if (name.length === 0)
    throw new SpecError([
      'a schema, table or extension name cannot be empty: give it a name in the task spec',
    ]);
  if (name.includes('\0'))
    throw new SpecError([
      `a name cannot contain a NUL character (${JSON.stringify(name)}): correct the name in the task spec`,
    ]);
  return `"${name.replace(/"/g, '""')}"`;
}

/** "schema"."table": matches exactly one relation (table, view, sequence ...) for -t / -T. */
export function exactRelationPattern(schema: string, relation: string): string {
  return `${exactNamePattern(schema)}.${exactNamePattern(relation)}`;
}
