import { AuthenticationError, ConnectionError, ObjectError, PermissionError } from '@pgferry/core';
import { startPostgres, freePort, type PgCluster } from '@pgferry/testing';
import { connect } from './connect';
import { resolveEndpoint } from './endpoint';
import { quoteIdent, quoteQualified } from './ident';
import { logicalSourceIssues, readServerInfo } from './server';

describe('libs/pg against a real cluster', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres({ logical: true });
    await pg.createDatabase('pg lib "test" db');
  });
  afterAll(() => pg?.stop());

  const endpoint = (overrides: Record<string, unknown> = {}) =>
    resolveEndpoint(
      {
        host: pg.host,
        port: pg.port,
        user: 'postgres',
        password: pg.password,
        database: 'pg lib "test" db',
        ssl: { mode: 'prefer' },
        ...overrides,
      },
      'source',
    );

  it('round-trips adversarial names through CREATE and SELECT', async () => {
    const client = await connect(endpoint(), 'source');
    try {
      const names = [
        'MixedCase',
        'with space',
        'quo"te',
        '"',
        'a.b',
        'línea_表_😀',
        "o'hara",
        'select',
        ' lead',
      ];
      for (const schema of ['Sch "1"', 'ünï']) {
        await client.query(`CREATE SCHEMA ${quoteIdent(schema)}`);
        for (const name of names) {
          await client.query(
            `CREATE TABLE ${quoteQualified(schema, name)} (${quoteIdent(name)} text PRIMARY KEY)`,
          );
          await client.query(`INSERT INTO ${quoteQualified(schema, name)} VALUES ($1)`, [name]);
          const { rows } = await client.query(
            `SELECT ${quoteIdent(name)} AS v FROM ${quoteQualified(schema, name)}`,
          );
          expect(rows).toEqual([{ v: name }]);
        }
        const { rows } = await client.query(
          'SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = $1 AND relkind = $2 ORDER BY relname',
          [schema, 'r'],
        );
        expect(rows.map((r) => r.relname)).toEqual(
          [...names].sort((x, y) => (Buffer.from(x) < Buffer.from(y) ? -1 : 1)),
        );
      }
    } finally {
      await client.end();
    }
  });

  it('connects in plain text under sslmode=prefer when the server has no TLS', async () => {
    const client = await connect(endpoint(), 'source');
    const { rows } = await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(rows[0].ssl).toBe(false);
    await client.end();
  });

  it('refuses sslmode=require against a server without TLS, naming the fix', async () => {
    await expect(connect(endpoint({ ssl: { mode: 'require' } }), 'source')).rejects.toThrow(
      `connecting to source postgres@127.0.0.1:${pg.port}/pg lib "test" db: the server does not accept TLS; set ssl.mode to prefer or disable, or enable ssl on the server`,
    );
  });

  it('classifies a wrong password, without printing it', async () => {
    const err = await connect(endpoint({ password: 'not-the-password' }), 'source').catch((e) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.message).toBe(
      `connecting to source postgres@127.0.0.1:${pg.port}/pg lib "test" db: password authentication failed for user "postgres"; check the user name and password in the task spec`,
    );
    expect(err.message).not.toContain('not-the-password');
  });

  it('classifies a missing database', async () => {
    const err = await connect(endpoint({ database: 'nope' }), 'destination').catch((e) => e);
    expect(err).toBeInstanceOf(ObjectError);
    expect(err.message).toMatch(
      /database "nope" does not exist; create the database or correct the database name in the task spec$/,
    );
  });

  it('classifies a closed port as a retriable connection error', async () => {
    const err = await connect(endpoint({ port: await freePort(), ssl: { mode: 'disable' } }), 'source').catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.retriable).toBe(true);
    expect(err.message).toMatch(/ECONNREFUSED.*check that the server is running and reachable$/);
  });

  it('classifies a missing privilege', async () => {
    await pg.query(`CREATE ROLE weak LOGIN PASSWORD 'weakpw'`);
    await pg.query('CREATE TABLE guarded (id int)', [], 'pg lib "test" db');
    const client = await connect(endpoint({ user: 'weak', password: 'weakpw' }), 'source');
    const { classifyPgError } = await import('./classify');
    const err = await client
      .query('SELECT * FROM guarded')
      .catch((e) => classifyPgError(e, 'reading source table public.guarded'));
    expect(err).toBeInstanceOf(PermissionError);
    expect((err as Error).message).toMatch(
      /^reading source table public.guarded: permission denied for table guarded; grant the missing privilege/,
    );
    await client.end();
  });

  it('reads version and logical settings, and reports what blocks a logical source', async () => {
    const client = await connect(endpoint(), 'source');
    const info = await readServerInfo(client, 'source');
    await client.end();
    expect(info.major).toBeGreaterThanOrEqual(10);
    expect(info.walLevel).toBe('logical');
    expect(info.isSuperuser).toBe(true);
    expect(logicalSourceIssues(info, 'source')).toEqual([]);
    const weak = await connect(endpoint({ user: 'weak', password: 'weakpw' }), 'source');
    const weakInfo = await readServerInfo(weak, 'source');
    await weak.end();
    expect(logicalSourceIssues({ ...weakInfo, walLevel: 'replica' }, 'source')).toEqual([
      {
        item: 'wal_level',
        level: 'failed',
        message:
          'source has wal_level = replica; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server',
      },
      {
        item: 'replication privilege',
        level: 'failed',
        message:
          'source: user weak has no REPLICATION attribute; run ALTER ROLE "weak" REPLICATION as a superuser',
      },
    ]);
  });
});
