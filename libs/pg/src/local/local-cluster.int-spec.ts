import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPgBinDir } from './pg-binaries';
import { startLocalCluster, type LocalCluster } from './local-cluster';

const bin = findPgBinDir();
// The local cluster needs the server binaries; libs/testing falls back to containers without them.
const withBinaries = bin ? describe : describe.skip;

withBinaries('startLocalCluster', () => {
  let pg: LocalCluster | undefined;
  afterAll(() => pg?.stop());

  it('starts from the local binaries, keeps its data through a restart, and leaves nothing once stopped', async () => {
    pg = await startLocalCluster({ logical: false, settings: { max_connections: 30 } });
    expect(pg.kind).toBe('local');
    expect(await pg.query('SHOW wal_level')).toEqual([{ wal_level: 'replica' }]);
    expect(await pg.query('SHOW max_connections')).toEqual([{ max_connections: '30' }]);
    await pg.createDatabase('Odd "Name"');
    await pg.query('CREATE TABLE kept (id int PRIMARY KEY)', [], 'Odd "Name"');
    await pg.query('INSERT INTO kept VALUES (7)', [], 'Odd "Name"');
    await pg.restart();
    expect(await pg.query('SELECT id FROM kept', [], 'Odd "Name"')).toEqual([{ id: 7 }]);
    expect(pg.log()).toMatch(/database system is ready to accept connections/);
    const { dataDir } = pg;
    await pg.stop();
    expect(existsSync(dataDir)).toBe(false);
    await expect(pg.query('SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('names the fix when PGFERRY_PG_BIN points where there are no binaries', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'pgferry-no-bin-'));
    const saved = process.env.PGFERRY_PG_BIN;
    process.env.PGFERRY_PG_BIN = empty;
    try {
      await expect(startLocalCluster()).rejects.toThrow(
        /no local PostgreSQL server binaries .*install the PostgreSQL server package, or set PGFERRY_PG_BIN/,
      );
    } finally {
      if (saved === undefined) delete process.env.PGFERRY_PG_BIN;
      else process.env.PGFERRY_PG_BIN = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
