import { AuthenticationError, ObjectError } from '@pgferry/core';
import type { Endpoint } from '@pgferry/pg';
import { PgDumpDriver, scrubSecret } from './pg-dump-driver';
import { PgToolStderr } from './pg-restore-errors';
import type { ToolRunOptions, ToolRunResult } from './pg-tools';

const SECRET = 's3cret-Pa55word';
const EP: Endpoint = {
  host: 'db.example',
  port: 5433,
  database: 'shop=main',
  user: 'migrator',
  password: SECRET,
  ssl: { mode: 'require' },
};
const TOOLS = {
  pgDump: '/pg/bin/pg_dump',
  pgRestore: '/pg/bin/pg_restore',
  versionNum: 150018,
  version: '15.18',
};

interface Call {
  file: string;
  args: string[];
  options: ToolRunOptions;
}

/** A runner that records calls and answers with a fixed exit code and stderr. */
function fake(
  exitCode = 0,
  stderr = '',
): { calls: Call[]; run: (f: string, a: string[], o: ToolRunOptions) => Promise<ToolRunResult> } {
  const calls: Call[] = [];
  return {
    calls,
    run: async (file, args, options) => {
      calls.push({ file, args, options });
      const err = new PgToolStderr();
      err.push(stderr);
      err.end();
      return { exitCode, signal: null, stdout: '', stderr: err };
    },
  };
}

const driver = (run: ReturnType<typeof fake>['run']) =>
  new PgDumpDriver({ tools: TOOLS, secretsDir: '/nonexistent/secrets', run });

describe('PgDumpDriver', () => {
  it('dumps with connection details and password in the environment only', async () => {
    const f = fake();
    await driver(f.run).dumpSchema(EP, 'source', ['-n', '"app"'], '/work/source.dump');
    const [call] = f.calls;
    expect(call.file).toBe('/pg/bin/pg_dump');
    expect(call.args).toEqual([
      '--schema-only',
      '--format=custom',
      '--encoding=UTF8',
      '--no-publications',
      '--no-subscriptions',
      '--file=/work/source.dump',
      '-n',
      '"app"',
    ]);
    expect(call.args.join(' ')).not.toMatch(/s3cret|db\.example|migrator|shop/);
    expect(call.options.env).toMatchObject({
      PGHOST: 'db.example',
      PGPORT: '5433',
      PGUSER: 'migrator',
      PGDATABASE: 'shop=main',
      PGPASSWORD: SECRET,
      PGSSLMODE: 'require',
    });
    expect(
      Object.keys(call.options.env).filter((k) => k.startsWith('PG') && k !== 'PGPASSWORD'),
    ).not.toContain('PGSERVICE');
  });

  it('restores pre-data in one transaction, without owners, privileges and tablespaces by default', async () => {
    const f = fake();
    const list = '/work/pre-data.list';
    await driver(f.run).restore(EP, 'destination', '/work/a.dump', list, {
      singleTransaction: true,
      context: 'restoring',
    });
    expect(f.calls[0].args).toEqual([
      '--dbname=postgresql://',
      `--use-list=${list}`,
      '--exit-on-error',
      '--verbose',
      '--single-transaction',
      '--no-owner',
      '--no-privileges',
      '--no-tablespaces',
      '/work/a.dump',
    ]);
  });

  it('restores post-data with jobs, keeping owners when asked', async () => {
    const f = fake();
    const list = '/work/pre-data.list';
    await driver(f.run).restore(EP, 'destination', '/work/a.dump', list, {
      jobs: 6,
      restoreOwnership: true,
      tablespaces: true,
      context: 'restoring',
    });
    expect(f.calls[0].args).toEqual([
      '--dbname=postgresql://',
      `--use-list=${list}`,
      '--exit-on-error',
      '--verbose',
      '--jobs=6',
      '/work/a.dump',
    ]);
  });

  it('turns a failed restore into a typed error naming the entry', async () => {
    const f = fake(
      1,
      'pg_restore: from TOC entry 219; 1259 16400 TABLE customers postgres\npg_restore: error: could not execute query: ERROR:  relation "customers" already exists\nCommand was: CREATE TABLE app.customers ();\n\n',
    );
    const list = '/work/pre-data.list';
    const err = await driver(f.run)
      .restore(EP, 'destination', '/work/a.dump', list, {
        context: 'restoring pre-data',
        describeEntry: () => 'table app.customers',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectError);
    expect((err as Error).message).toMatch(
      /^restoring pre-data: table app\.customers \(TOC entry 219\): relation/,
    );
  });

  it('never lets the password through into the error', async () => {
    const f = fake(
      1,
      `pg_dump: error: connection to server at "db.example", port 5433 failed: FATAL:  password authentication failed for user "${SECRET}"\n`,
    );
    const err = await driver(f.run)
      .dumpSchema(EP, 'source', [], '/work/x.dump')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(SECRET);
    expect(
      JSON.stringify((err as Error).cause, Object.getOwnPropertyNames((err as Error).cause)),
    ).not.toContain(SECRET);
  });
});

describe('scrubSecret', () => {
  it('redacts URL credentials and the password itself', () => {
    expect(scrubSecret('postgres://u:pw@h/db failed for hunter22', 'hunter22')).toBe(
      'postgres://u:[redacted]@h/db failed for [redacted]',
    );
    expect(scrubSecret('abc', 'ab')).toBe('abc');
    expect(
      scrubSecret(`CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'p''w')`, undefined),
    ).toBe(`CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '[redacted]')`);
  });
});
