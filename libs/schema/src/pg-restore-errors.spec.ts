import {
  AuthenticationError,
  ConnectionError,
  DataError,
  ObjectError,
  PermissionError,
  PgferryError,
} from '@pgferry/core';
import { PgToolError, PgToolStderr, toolFailureError, type PgToolFailure } from './pg-restore-errors';

/** pg_restore 15 stderr, verbose, --single-transaction, a table already on the destination. */
const CONFLICT = `pg_restore: connecting to database for restore
pg_restore: creating SCHEMA "Sales Dept"
pg_restore: creating TABLE "app.customers"
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 219; 1259 16400 TABLE customers postgres
pg_restore: error: could not execute query: ERROR:  relation "customers" already exists
Command was: CREATE TABLE app.customers (
    id integer NOT NULL,
    name text NOT NULL
);


`;

/** pg_restore 15 stderr, --jobs 4, a unique index over duplicated rows. */
const PARALLEL = `pg_restore: connecting to database for restore
pg_restore: entering main parallel loop
pg_restore: launching item 3294 INDEX idx "note"
pg_restore: launching item 3291 CONSTRAINT customers customers_pkey
pg_restore: finished item 3291 CONSTRAINT customers customers_pkey
pg_restore: while PROCESSING TOC:
pg_restore: from TOC entry 3293; 2606 16416 CONSTRAINT gadgets gadgets_label_key postgres
pg_restore: error: could not execute query: ERROR:  could not create unique index "gadgets_label_key"
DETAIL:  Key (label)=(x) is duplicated.
Command was: ALTER TABLE ONLY app.gadgets
    ADD CONSTRAINT gadgets_label_key UNIQUE (label);


pg_restore: error: a worker process died unexpectedly
`;

const AUTH = `pg_dump: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "postgres"
`;

const REFUSED = `pg_restore: error: connection to server at "127.0.0.1", port 1 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
`;

function parse(text: string, chunk = 7): PgToolStderr {
  const p = new PgToolStderr();
  for (let i = 0; i < text.length; i += chunk) p.push(text.slice(i, i + chunk));
  p.end();
  return p;
}

describe('PgToolStderr', () => {
  it('names the TOC entry and keeps the statement of a failed query, across chunk boundaries', () => {
    expect(parse(CONFLICT).firstError()).toEqual({
      kind: 'query',
      message: 'relation "customers" already exists',
      statement: 'CREATE TABLE app.customers (\n    id integer NOT NULL,\n    name text NOT NULL\n);\n',
      dumpId: 219,
      entryText: '1259 16400 TABLE customers postgres',
    });
  });

  it('keeps the first error of a parallel run, with its detail', () => {
    expect(parse(PARALLEL, 1).firstError()).toEqual({
      kind: 'query',
      message: 'could not create unique index "gadgets_label_key"',
      detail: 'Key (label)=(x) is duplicated.',
      statement: 'ALTER TABLE ONLY app.gadgets\n    ADD CONSTRAINT gadgets_label_key UNIQUE (label);\n',
      dumpId: 3293,
      entryText: '2606 16416 CONSTRAINT gadgets gadgets_label_key postgres',
    });
  });

  it('reads connection failures', () => {
    expect(parse(AUTH).firstError()).toEqual({
      kind: 'connection',
      message: 'password authentication failed for user "postgres"',
    });
    expect(parse(REFUSED).firstError()).toEqual({ kind: 'connection', message: 'Connection refused' });
  });

  it('keeps a bounded tail without progress lines', () => {
    const p = parse(
      `${'pg_restore: creating TABLE "a.b"\n'.repeat(1000)}pg_restore: warning: errors ignored on restore: 1\n`,
    );
    expect(p.tail()).toBe('pg_restore: warning: errors ignored on restore: 1');
    expect(p.firstError()).toBeUndefined();
  });
});

describe('toolFailureError', () => {
  const ctx = {
    context: 'restoring pre-data into destination postgres@db:5432/app',
    tool: 'pg_restore',
    stderrTail: 'tail',
    describeEntry: (id: number) => (id === 219 ? 'table app.customers' : undefined),
  };
  const query = (message: string, extra: Partial<PgToolFailure> = {}): PgToolFailure => ({
    kind: 'query',
    message,
    dumpId: 219,
    entryText: '1259 16400 TABLE customers postgres',
    statement: 'CREATE TABLE app.customers (\n  id int\n);\n',
    ...extra,
  });

  it.each([
    [
      query('relation "customers" already exists'),
      ObjectError,
      'OBJECT_EXISTS',
      'restoring pre-data into destination postgres@db:5432/app: table app.customers (TOC entry 219): relation "customers" already exists; the object already exists on the destination: drop or rename it there, map the migrated object to another name (objects.include[].renameTo / renameTables), or exclude it from the task; statement: CREATE TABLE app.customers (',
    ],
    [
      query('permission denied for schema app'),
      PermissionError,
      '42501',
      'restoring pre-data into destination postgres@db:5432/app: table app.customers (TOC entry 219): permission denied for schema app; grant the destination user the privilege (CREATE on the database and schemas; superuser for C functions, event triggers and some extensions) or use a user that has it; statement: CREATE TABLE app.customers (',
    ],
    [
      query('role "ann" does not exist', { dumpId: 7, statement: undefined }),
      ObjectError,
      '42704',
      'restoring pre-data into destination postgres@db:5432/app: 1259 16400 TABLE customers postgres (TOC entry 7): role "ann" does not exist; create the role on the destination, or restore without ownership (restoreOwnership off)',
    ],
    [
      query('type "public.citext" does not exist'),
      ObjectError,
      '42704',
      'restoring pre-data into destination postgres@db:5432/app: table app.customers (TOC entry 219): type "public.citext" does not exist; it depends on an object that is not on the destination: include that object (objects.include) or create it on the destination first; statement: CREATE TABLE app.customers (',
    ],
    [
      query('could not access file "$libdir/foo": No such file or directory'),
      ObjectError,
      '58P01',
      'restoring pre-data into destination postgres@db:5432/app: table app.customers (TOC entry 219): could not access file "$libdir/foo": No such file or directory; install the package that provides this library or extension on the destination server, or remove the object from the source or the selection; statement: CREATE TABLE app.customers (',
    ],
    [
      query('could not create unique index "k"', { detail: 'Key (a)=(1) is duplicated.' }),
      DataError,
      'RESTORE_FAILED',
      'restoring pre-data into destination postgres@db:5432/app: table app.customers (TOC entry 219): could not create unique index "k" (Key (a)=(1) is duplicated.); fix the object on the source or the destination and run the step again; statement: CREATE TABLE app.customers (',
    ],
  ])('%#: %p', (failure, type, code, message) => {
    const err = toolFailureError(failure, ctx);
    expect(err).toBeInstanceOf(type);
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
    expect(err.cause).toBeInstanceOf(PgToolError);
    expect((err.cause as PgToolError).failure).toBe(failure);
  });

  it('uses the permission hint of the side that failed', () => {
    const err = toolFailureError(
      { kind: 'query', message: 'permission denied for table t' },
      { ...ctx, context: 'dumping', permissionHint: 'grant SELECT' },
    );
    expect(err.message).toBe('dumping: permission denied for table t; grant SELECT');
  });

  it.each([
    [
      'password authentication failed for user "x"',
      AuthenticationError,
      false,
      'check the user name and password',
    ],
    ['no pg_hba.conf entry for host "1.2.3.4"', AuthenticationError, false, 'pg_hba.conf'],
    ['database "nope" does not exist', ObjectError, false, 'create the database'],
    ['SSL error: certificate verify failed', ConnectionError, false, 'check ssl.mode'],
    ['Connection refused', ConnectionError, true, 'check that the server is running'],
  ])('connection failure %j', (message, type, retriable, fix) => {
    const err = toolFailureError({ kind: 'connection', message }, ctx);
    expect(err).toBeInstanceOf(type);
    expect(err.retriable).toBe(retriable);
    expect(err.message.startsWith(`${ctx.context}: `)).toBe(true);
    expect(err.message).toContain(fix);
  });

  it('falls back to the output tail when nothing was recognised', () => {
    const err = toolFailureError(undefined, {
      ...ctx,
      stderrTail: 'pg_restore: [archiver] input file is too short',
    });
    expect(err).toBeInstanceOf(PgferryError);
    expect(err.code).toBe('PG_TOOL_FAILED');
    expect(err.message).toBe(
      'restoring pre-data into destination postgres@db:5432/app: pg_restore failed: pg_restore: [archiver] input file is too short',
    );
  });
});
