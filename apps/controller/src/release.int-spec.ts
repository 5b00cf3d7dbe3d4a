import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { startPostgres, type PgCluster } from '@pgferry/testing';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('pgferry release', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres({ logical: true });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('drops the task slot and publication, prints each, and never prints the password', async () => {
    await pg.query(`CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pgferry_rel FOR TABLE t`);
    await pg.query(`SELECT pg_create_logical_replication_slot('pgferry_rel', 'pgoutput')`);
    const first = await cli(['release', '--source', pg.url(), '--name', 'rel']);
    expect(first.out).toContain(
      '  dropped  replication slot pgferry_rel\n  dropped  publication "pgferry_rel"\n',
    );
    expect(first.out).not.toContain(pg.password);
    expect(first.code).toBe(0);
    const again = await cli(['release', '--source', pg.url(), '--name', 'rel']);
    expect(again).toEqual({
      code: 0,
      out: expect.stringContaining('nothing of this task is left on the source'),
    });
    expect(await pg.query(`SELECT slot_name FROM pg_replication_slots`)).toEqual([]);
  });
});
