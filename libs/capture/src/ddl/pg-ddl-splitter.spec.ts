import { capturedStatement, type CapturedStatement } from './pg-ddl-splitter';

const split = (command: string, tag: string, ordinal = 1, nested = false) =>
  capturedStatement({ command, tag, ordinal, nested } satisfies CapturedStatement);

describe('capturedStatement: the statement of a query string the DDL trigger reported', () => {
  it.each([
    [
      'a schema change sent alone, as written',
      `ALTER TABLE a ADD COLUMN c int`,
      'ALTER TABLE',
      1,
      'ALTER TABLE a ADD COLUMN c int',
    ],
    [
      'the DDL of a string with DML after it, never the DML',
      `ALTER TABLE a ADD COLUMN c int; INSERT INTO b VALUES (1,'once')`,
      'ALTER TABLE',
      1,
      'ALTER TABLE a ADD COLUMN c int',
    ],
    [
      'the DDL of a string with DML and settings before it',
      `SET search_path = "Shop Ü"; UPDATE b SET v = 'ü'; ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2); CREATE TABLE items (id serial PRIMARY KEY, sku text);`,
      'CREATE TABLE',
      1,
      'CREATE TABLE items (id serial PRIMARY KEY, sku text)',
    ],
    [
      'the second statement of a tag, cut by byte offsets past multi-byte names',
      `ALTER TABLE "Ü1" ADD x int; SELECT 'ü'; ALTER TABLE "Ü2" ADD y int; DELETE FROM c`,
      'ALTER TABLE',
      2,
      'ALTER TABLE "Ü2" ADD y int',
    ],
    [
      'a statement between transaction control',
      `BEGIN; CREATE INDEX i ON t (a); COMMIT;`,
      'CREATE INDEX',
      1,
      'CREATE INDEX i ON t (a)',
    ],
    [
      'a drop by its object type, with a comment and a dollar-quoted body around it',
      `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $x$ SELECT 1; $x$; /* c */ DROP VIEW v; SELECT f()`,
      'DROP VIEW',
      1,
      'DROP VIEW v',
    ],
    [
      'a function definition, whose body holds statements of its own',
      `CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ INSERT INTO t VALUES (1); ALTER TABLE t ADD c int $$; INSERT INTO t VALUES (2)`,
      'CREATE FUNCTION',
      1,
      'CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ INSERT INTO t VALUES (1); ALTER TABLE t ADD c int $$',
    ],
    [
      'a rename of a view column, whose tag differs between server versions, when it is the only one',
      `ALTER VIEW v RENAME COLUMN a TO b; INSERT INTO t VALUES (1)`,
      'ALTER VIEW',
      1,
      'ALTER VIEW v RENAME COLUMN a TO b',
    ],
    [
      'SELECT INTO, GRANT and REVOKE by their tags',
      `GRANT SELECT ON t TO r; REVOKE SELECT ON t FROM r; SELECT 1 AS a INTO t2; SELECT 1`,
      'REVOKE',
      1,
      'REVOKE SELECT ON t FROM r',
    ],
  ])('keeps %s', async (_what, command, tag, ordinal, want) => {
    expect(await split(command, tag, ordinal)).toEqual({ statement: want });
  });

  it.each([
    [
      'a change made inside a DO block',
      `DO $$ BEGIN EXECUTE 'ALTER TABLE a ADD COLUMN d int'; END $$`,
      'ALTER TABLE',
      1,
      true,
      /ran inside a function, procedure, DO block or trigger/,
    ],
    [
      'a change made by a function a query called',
      `SELECT make_tables(); ALTER TABLE a ADD c int`,
      'CREATE TABLE',
      1,
      true,
      /ran inside a function/,
    ],
    [
      'a string that holds no such statement',
      `SELECT 1; INSERT INTO t VALUES (1)`,
      'ALTER TABLE',
      1,
      false,
      /cannot tell for certain which of them is the ALTER TABLE/,
    ],
    [
      'a single statement that is not a schema change',
      `CALL p()`,
      'ALTER TABLE',
      1,
      false,
      /did not come from the statement itself/,
    ],
    [
      'text the parser cannot read',
      `ALTER TABLE a ADD c int; garbage here`,
      'ALTER TABLE',
      1,
      false,
      /cannot split the statement into its parts \(syntax error at or near "garbage"\)/,
    ],
    [
      'an ordinal past the statements of the tag',
      `ALTER TABLE a ADD c int; INSERT INTO t VALUES (1)`,
      'ALTER TABLE',
      2,
      false,
      /cannot tell for certain/,
    ],
    [
      'a choice between statements after a rollback to a savepoint',
      `SAVEPOINT s; ALTER TABLE a ADD c int; ROLLBACK TO s; ALTER TABLE b ADD c int`,
      'ALTER TABLE',
      1,
      false,
      /rolls back to a savepoint/,
    ],
    [
      'a choice between a column rename and another statement of a tag it may carry',
      `ALTER VIEW v RENAME COLUMN a TO b; ALTER TABLE t ADD c int`,
      'ALTER TABLE',
      1,
      false,
      /cannot tell for certain/,
    ],
    [
      'a multi-statement string with a statement the splitter has no tag for',
      `CREATE ROLE x; ALTER TABLE t ADD c int`,
      'ALTER TABLE',
      1,
      false,
      /holds 2 statements, and pgferry cannot tell which of them is the ALTER TABLE/,
    ],
  ])('refuses %s', async (_what, command, tag, ordinal, nested, want) => {
    const got = await split(command, tag, ordinal, nested);
    expect('refusal' in got && got.refusal).toMatch(want);
  });
});
