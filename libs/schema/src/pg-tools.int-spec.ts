import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgferryError } from '@pgferry/core';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { resolveEndpoint, quoteIdent, quoteQualified } from '@pgferry/pg';
import { PgDumpDriver } from './pg-dump-driver';
import { exactNamePattern, exactRelationPattern } from './pg-pattern';
import { findPgTools, pgToolSearchFromEnv, type PgTools } from './pg-tools';

/** Names that a naive pattern would confuse with one another. */
const NAMES = [
  'a.b',
  'aXb',
  'A',
  'a',
  'x*',
  'xyz',
  'x?',
  'xy',
  '$d',
  'd',
  '(p)',
  'p',
  'q"t',
  'sp ace',
  'línea_表',
  'back\\s',
];

describe('pg_dump and pg_restore on this machine', () => {
  let pg: PgCluster;
  let tools: PgTools;
  let dir: string;

  beforeAll(async () => {
    pg = await startPostgres({ logical: false });
    dir = mkdtempSync(join(tmpdir(), 'pgferry-tools-'));
    const info = await pg.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
    tools = await findPgTools(info[0].v, pgToolSearchFromEnv(process.env), 'test server');
    const ddl = ['CREATE SCHEMA "Sch.1"', 'CREATE SCHEMA "SchX1"'];
    for (const schema of ['Sch.1', 'SchX1']) {
      for (const name of NAMES)
        ddl.push(`CREATE TABLE ${quoteQualified(schema, name)} (${quoteIdent(name)} int)`);
    }
    await pg.query(ddl.join(';\n'));
  });
  afterAll(async () => {
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds tools at least as new as the server', () => {
    expect(tools.versionNum).toBeGreaterThanOrEqual(100000);
    expect(tools.pgDump).toMatch(/pg_dump$/);
    expect(tools.pgRestore).toMatch(/pg_restore$/);
  });

  it('says which version is needed and how to get it', async () => {
    const err = await findPgTools(
      990000,
      pgToolSearchFromEnv(process.env),
      'the source server runs PostgreSQL 99.0',
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgferryError);
    expect((err as PgferryError).code).toBe('PG_TOOLS_TOO_OLD');
    expect((err as Error).message).toMatch(
      /^the schema migration needs pg_dump and pg_restore of PostgreSQL 99 or later \(the source server runs PostgreSQL 99\.0\); found only pg_dump \d+\.\d+ at \/.*pg_dump.*\. Install the PostgreSQL 99 client tools or newer \(Debian\/Ubuntu: apt-get install postgresql-client-99\), or set PGFERRY_PG_BIN to a bin directory holding pg_dump and pg_restore 99 or later$/,
    );
    const none = await findPgTools(100000, { binDir: dir }, 'x').catch((e: unknown) => e);
    expect((none as PgferryError).code).toBe('PG_TOOLS_NOT_FOUND');
    expect((none as Error).message).toContain(`found only ${dir} has no pg_dump and pg_restore`);
  });

  it('selects exactly one table per quoted pattern, whatever the name holds', async () => {
    const driver = new PgDumpDriver({ tools, secretsDir: join(dir, 'secrets') });
    const ep = resolveEndpoint(
      {
        host: pg.host,
        port: pg.port,
        user: pg.user,
        password: pg.password,
        database: 'postgres',
        ssl: { mode: 'disable' },
      },
      'source',
    );
    const hints = { schemas: ['Sch.1', 'SchX1'], owners: ['postgres'] };
    for (const name of NAMES) {
      const file = join(dir, 'one.dump');
      await driver.dumpSchema(
        ep,
        'source',
        ['--strict-names', '-t', exactRelationPattern('Sch.1', name)],
        file,
      );
      const { entries } = await driver.listToc(file, hints);
      const tables = entries.filter((e) => e.desc === 'TABLE').map((e) => [e.schema, e.tag]);
      expect([name, tables]).toEqual([name, [['Sch.1', name]]]);
    }
    const file = join(dir, 'schema.dump');
    await driver.dumpSchema(ep, 'source', ['-n', exactNamePattern('Sch.1')], file);
    const { entries } = await driver.listToc(file, hints);
    expect(new Set(entries.filter((e) => e.desc === 'TABLE').map((e) => e.schema))).toEqual(
      new Set(['Sch.1']),
    );
  });
});
