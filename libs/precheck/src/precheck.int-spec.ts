import { parseTaskSpec, type TaskSpecInput } from '@pgferry/core';
import { freePort, startPostgres, type PgCluster } from '@pgferry/testing';
import { blocking, formatPrecheckReport, runPrecheck, type PrecheckReport } from './index';

/**
 * The precheck against real servers: a logical source and a destination without logical
 * decoding; every case has its own databases on both.
 */
describe('runPrecheck', () => {
  let src: PgCluster;
  let dst: PgCluster;
  beforeAll(async () => {
    [src, dst] = await Promise.all([startPostgres({ logical: true }), startPostgres({ logical: false })]);
  });
  afterAll(async () => {
    await src?.stop();
    await dst?.stop();
  });

  /** Creates `db` on both clusters and runs `sourceSql` / `destinationSql` in it. */
  async function databases(db: string, sourceSql: string, destinationSql = ''): Promise<void> {
    await Promise.all([src.createDatabase(db), dst.createDatabase(db)]);
    await src.query(sourceSql, [], db);
    if (destinationSql) await dst.query(destinationSql, [], db);
  }
  const spec = (db: string, more: Partial<TaskSpecInput> = {}) =>
    parseTaskSpec({
      name: 'orders',
      source: { url: src.url(db) },
      destination: { url: dst.url(db) },
      ...more,
    });
  const notPassed = (r: PrecheckReport) => r.items.filter((i) => i.level !== 'passed');
  const find = (r: PrecheckReport, id: string) => r.items.find((i) => i.id === id);

  it('passes a good setup, every item passed, and reports the sizes', async () => {
    await databases(
      'good',
      `CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Orders" (id bigint PRIMARY KEY, note text);
       INSERT INTO "Sales"."Orders" SELECT g, 'n' FROM generate_series(1, 1000) g; ANALYZE "Sales"."Orders";
       CREATE TABLE public.codes (code text NOT NULL UNIQUE, v int); ALTER TABLE public.codes REPLICA IDENTITY FULL`,
    );
    const report = await runPrecheck(spec('good', { migrationTypes: { incremental: true } }));
    expect(notPassed(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(blocking(report, [])).toEqual({ mayStart: true, blockers: [], unmatched: [] });
    expect(report.items.map((i) => i.id)).toEqual([
      'connectivity:source',
      'connectivity:destination',
      'same-database',
      'versions',
      'logical',
      'slot:pgferry_orders',
      'selection',
      'privileges:source',
      'ddl-capture',
      'privileges:destination',
      'keys',
      'conflicts',
      'conflicts:schemas',
      'names',
      'encoding',
      'compression',
      'large-objects',
      'sizes',
    ]);
    expect(find(report, 'connectivity:source')?.message).toBe(
      `connected to postgres@127.0.0.1:${src.port}/good`,
    );
    expect(find(report, 'sizes')?.message).toMatch(
      /^2 tables, about 1,000 rows and \d+ kB on the source \(estimates from the statistics, including indexes and TOAST\)$/,
    );
    expect(find(report, 'conflicts:schemas')?.message).toBe(
      'target schema "public" already exists on the destination and is reused; "Sales" is created',
    );
    const text = formatPrecheckReport(report);
    expect(text.split('\n')).toHaveLength(report.items.length);
    expect(text).not.toContain(src.password);
  });

  it('fails connectivity with the classified reason and never prints the password', async () => {
    await databases('conn', 'CREATE TABLE t (id int PRIMARY KEY)');
    const wrong = dst.url('conn').replace(dst.password, 'Wr0ng-pa55');
    let report = await runPrecheck(
      parseTaskSpec({ name: 'orders', source: { url: src.url('conn') }, destination: { url: wrong } }),
    );
    expect(notPassed(report)).toEqual([
      {
        id: 'connectivity:destination',
        name: 'destination connectivity',
        level: 'failed',
        object: `postgres@127.0.0.1:${dst.port}/conn`,
        message: `connecting to destination postgres@127.0.0.1:${dst.port}/conn: password authentication failed for user "postgres"; check the user name and password in the task spec`,
      },
    ]);
    expect(report.items.map((i) => i.id)).toEqual(['connectivity:source', 'connectivity:destination']);
    expect(JSON.stringify(report) + formatPrecheckReport(report)).not.toContain('Wr0ng-pa55');

    const closed = await freePort();
    report = await runPrecheck(
      parseTaskSpec({
        name: 'orders',
        source: { url: src.url('nope') },
        destination: {
          host: '127.0.0.1',
          port: closed,
          user: 'postgres',
          password: 'secret-pw',
          database: 'conn',
        },
      }),
    );
    expect(report.items.map((i) => i.message)).toEqual([
      `connecting to source postgres@127.0.0.1:${src.port}/nope: database "nope" does not exist; create the database or correct the database name in the task spec`,
      `connecting to destination postgres@127.0.0.1:${closed}/conn: connect ECONNREFUSED 127.0.0.1:${closed} (ECONNREFUSED); check that the server is running and reachable`,
    ]);
    expect(JSON.stringify(report)).not.toContain('secret-pw');

    report = await runPrecheck(spec('conn', { destination: { url: `${dst.url('conn')}?sslmode=require` } }));
    expect(find(report, 'connectivity:destination')?.message).toBe(
      `connecting to destination postgres@127.0.0.1:${dst.port}/conn: the server does not accept TLS; set ssl.mode to prefer or disable, or enable ssl on the server`,
    );
  });

  it('alerts on a keyless table, which blocks until acknowledged, and fails it with incremental', async () => {
    await databases(
      'keys',
      'CREATE TABLE public.history (at timestamptz, what text); CREATE TABLE public.ok (id int PRIMARY KEY)',
    );
    const id = 'keys:"public"."history"';
    const alert = await runPrecheck(spec('keys'));
    expect(notPassed(alert)).toEqual([
      {
        id,
        name: 'primary key',
        level: 'alert',
        object: '"public"."history"',
        message:
          '"public"."history" has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows; add a primary key, or run ALTER TABLE "public"."history" REPLICA IDENTITY FULL',
        fix: 'ALTER TABLE "public"."history" REPLICA IDENTITY FULL;',
      },
    ]);
    expect(alert.ok).toBe(true);
    expect(blocking(alert, []).mayStart).toBe(false);
    expect(blocking(alert, [id]).mayStart).toBe(true);

    const failed = await runPrecheck(spec('keys', { migrationTypes: { incremental: true } }));
    expect(notPassed(failed)).toEqual([
      {
        id,
        name: 'primary key',
        level: 'failed',
        object: '"public"."history"',
        message:
          '"public"."history" has no primary key or unique NOT NULL key and replica identity default: incremental migration would not capture its updates and deletes (PostgreSQL logs no old key for them, and rejects UPDATE and DELETE on a published table without a replica identity); run ALTER TABLE "public"."history" REPLICA IDENTITY FULL, or add a primary key',
        fix: 'ALTER TABLE "public"."history" REPLICA IDENTITY FULL;',
      },
    ]);
    expect(blocking(failed, [id]).mayStart).toBe(false);
    // The offered fix works, and the precheck wrote nothing: the same spec now passes.
    await src.query(failed.items.find((i) => i.id === id)!.fix!, [], 'keys');
    expect(notPassed(await runPrecheck(spec('keys', { migrationTypes: { incremental: true } })))).toEqual([]);
  });

  it('fails a table the spec names but the source lacks, with the spec path', async () => {
    await databases('sel', 'CREATE TABLE public.t (id int PRIMARY KEY)');
    const report = await runPrecheck(
      spec('sel', { objects: { include: [{ schema: 'public', tables: ['t', 'T'] }] } }),
    );
    expect(notPassed(report)).toEqual([
      {
        id: 'selection:objects.include[0].tables[1]',
        name: 'selection',
        level: 'failed',
        object: 'objects.include[0].tables[1]',
        message:
          'objects.include[0].tables[1]: table "public"."T" does not exist on the source (names are case-sensitive)',
        fix: 'correct or remove objects.include[0].tables[1] in the task spec',
      },
    ]);
    expect(report.ok).toBe(false);
  });

  it('fails a destination table in the way under report-error and alerts under ignore', async () => {
    await databases(
      'conflict',
      'CREATE TABLE public.customers (id int PRIMARY KEY, name text); CREATE TABLE public.fresh (id int PRIMARY KEY)',
      'CREATE TABLE public.customers (id int PRIMARY KEY, name text)',
    );
    const reportError = await runPrecheck(spec('conflict'));
    expect(notPassed(reportError)).toEqual([
      {
        id: 'conflicts:"public"."customers"',
        name: 'destination conflicts',
        level: 'failed',
        object: '"public"."customers"',
        message:
          'destination already has table "public"."customers", the target of source table "public"."customers"; drop or rename it on the destination, map the source table to another name (objects.include[].renameTables or renameTo), or set options.conflictMode: ignore to write the rows into it by key',
        fix: 'drop or rename the destination table, rename the target in the task spec, or set options.conflictMode: ignore',
      },
    ]);
    const ignore = await runPrecheck(spec('conflict', { options: { conflictMode: 'ignore' } }));
    expect(notPassed(ignore).map((i) => [i.id, i.level])).toEqual([
      ['conflicts:"public"."customers"', 'alert'],
    ]);
    expect(notPassed(ignore)[0].message).toContain('source rows are upserted into it by key');
    expect(blocking(ignore, ['conflicts:"public"."customers"']).mayStart).toBe(true);
    const renamed = await runPrecheck(
      spec('conflict', {
        objects: { include: [{ schema: 'public', renameTables: { customers: 'customers_v2' } }] },
      }),
    );
    expect(notPassed(renamed)).toEqual([]);
  });

  it('fails incremental from a source without wal_level = logical', async () => {
    await Promise.all([src.createDatabase('wal'), dst.createDatabase('wal')]);
    await dst.query('CREATE TABLE t (id int PRIMARY KEY)', [], 'wal');
    const report = await runPrecheck(
      parseTaskSpec({
        name: 'orders',
        source: { url: dst.url('wal') },
        destination: { url: src.url('wal') },
        migrationTypes: { incremental: true },
      }),
    );
    expect(notPassed(report)).toEqual([
      {
        id: 'logical:wal_level',
        name: 'wal_level',
        level: 'failed',
        message:
          'source has wal_level = replica; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server',
        fix: 'ALTER SYSTEM SET wal_level = logical;\n-- then restart the server',
      },
    ]);
  });

  it('fails a source and destination that are the same database, and stops there', async () => {
    await src.createDatabase('same');
    const report = await runPrecheck(
      parseTaskSpec({
        name: 'orders',
        source: { url: src.url('same') },
        destination: { url: src.url('same') },
      }),
    );
    expect(report.items.map((i) => [i.id, i.level])).toEqual([
      ['connectivity:source', 'passed'],
      ['connectivity:destination', 'passed'],
      ['same-database', 'failed'],
    ]);
    expect(report.items[2].message).toBe(
      `source and destination are the same database (postgres@127.0.0.1:${src.port}/same); point the destination at another database or server`,
    );
    await src.createDatabase('same other');
    const other = await runPrecheck(
      parseTaskSpec({
        name: 'orders',
        source: { url: src.url('same') },
        destination: { url: src.url('same other') },
      }),
    );
    expect(other.items.find((i) => i.id === 'same-database')?.level).toBe('passed');
  });

  it('handles names with quotes, spaces and Unicode, and fails names the destination would truncate', async () => {
    await databases(
      'names "ü"',
      `CREATE SCHEMA "Sü d ""q"""; CREATE TABLE "Sü d ""q"""."tab ""x"" ü 表" (v text);
       CREATE TABLE "Sü d ""q""".long (id int PRIMARY KEY)`,
      `CREATE SCHEMA "Sü d ""q"""; CREATE TABLE "Sü d ""q"""."tab ""x"" ü 表" (v text)`,
    );
    const long = 'é'.repeat(32);
    const report = await runPrecheck(
      spec('names "ü"', {
        options: { conflictMode: 'ignore' },
        objects: { include: [{ schema: 'Sü d "q"', renameTables: { long } }] },
      }),
    );
    expect(notPassed(report).map((i) => [i.id, i.level])).toEqual([
      ['keys:"Sü d ""q"""."tab ""x"" ü 表"', 'alert'],
      ['conflicts:"Sü d ""q"""."tab ""x"" ü 表"', 'alert'],
      [`names:"Sü d ""q"""."${long}"`, 'failed'],
    ]);
    expect(report.items.find((i) => i.id.startsWith('names:'))?.message).toBe(
      `target table name "${long}" of source table "Sü d ""q"""."long" (set by objects.include[].renameTables) is 64 bytes long; the destination holds names of at most 63 bytes and would truncate it; choose a shorter name with objects.include[].renameTables`,
    );
  });
});
