import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { startPostgres, usingPostgres, type PgCluster } from './postgres';
import { waitFor } from './wait-for';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

describe('startPostgres', () => {
  let a: PgCluster | undefined;
  let b: PgCluster | undefined;

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('starts two logical clusters side by side, creates a table on one, and stops both', async () => {
    [a, b] = await Promise.all([startPostgres({ logical: true }), startPostgres({ logical: true })]);
    expect(a.port).not.toBe(b.port);
    for (const pg of [a, b]) {
      const [row] = await pg.query<{ wal_level: string }>('SHOW wal_level');
      expect(row.wal_level).toBe('logical');
    }
    await a.query('CREATE TABLE only_here (id int PRIMARY KEY, v text)');
    await a.query("INSERT INTO only_here VALUES (1, 'x')");
    expect(await a.query('SELECT v FROM only_here')).toEqual([{ v: 'x' }]);
    await expect(b.query('SELECT 1 FROM only_here')).rejects.toThrow('relation "only_here" does not exist');

    const dirs = [a.dataDir, b.dataDir];
    const ports = [a.port, b.port];
    await a.stop();
    await b.stop();
    // Local clusters have a data directory that must be gone; containers have none.
    expect(dirs.filter((dir) => dir !== undefined && existsSync(dir))).toEqual([]);
    for (const port of ports) expect(await portOpen(port)).toBe(false);
  });

  it('requires the password over TCP', async () => {
    await usingPostgres(async (pg) => {
      const { Client } = await import('pg');
      const wrong = new Client({
        host: pg.host,
        port: pg.port,
        user: 'postgres',
        password: 'wrong',
        database: 'postgres',
      });
      await expect(wrong.connect()).rejects.toThrow('password authentication failed for user "postgres"');
    });
  });

  it('cleans up after a failing test body', async () => {
    let seen: PgCluster | undefined;
    await expect(
      usingPostgres(async (pg) => {
        seen = pg;
        await pg.query('CREATE TABLE t (id int)');
        throw new Error('the test body failed');
      }),
    ).rejects.toThrow('the test body failed');
    expect(seen).toBeDefined();
    await waitFor(() => portOpen(seen!.port).then((open) => !open), {
      reason: 'the failed test cluster to stop',
      timeout: 10_000,
    });
    expect(seen!.dataDir !== undefined && existsSync(seen!.dataDir)).toBe(false);
    // stop() stays safe to call again.
    await seen!.stop();
  });
});
