import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadPgbenchLike, startPostgres, tableDigest, waitFor, type PgCluster } from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { startTaskApi } from './api/tasks.module';
import type { TaskStatus } from './api/task-status';
import { resolveEndpoint } from '@pgferry/pg';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

function sink() {
  let text = '';
  const out = new Writable({
    write(chunk, _e, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { out, text: () => text };
}

async function controlSchemaExists(pg: PgCluster, db: string): Promise<boolean> {
  return (
    (
      await pg.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgferry'`,
        [],
        db,
      )
    )[0].n > 0
  );
}

describe('pgferry migrate', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-migrate-'));
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad input before writing anything: wrong password, unknown table, a destination table in the way', async () => {
    await source.createDatabase('bad');
    await destination.createDatabase('bad');
    await source.query('CREATE TABLE public.orders (id int PRIMARY KEY)', [], 'bad');
    const wrong = destination.url('bad').replace(destination.password, 'not-it');
    const a = sink();
    expect(
      (
        await runMigrate({
          source: source.url('bad'),
          target: wrong,
          name: 'bad1',
          workDir: join(dir, 'bad1'),
          out: a.out,
        })
      ).code,
    ).toBe(1);
    expect(a.text()).toContain(
      'password authentication failed for user "postgres"; check the user name and password in the task spec',
    );
    expect(a.text()).not.toContain('not-it');

    await expect(
      runMigrate({
        source: source.url('bad'),
        target: destination.url('bad'),
        tables: 'public.orders,public.nope',
        name: 'bad2',
        workDir: join(dir, 'bad2'),
        out: sink().out,
      }),
    ).rejects.toThrow(
      'objects.include[0].tables[1]: table "public"."nope" does not exist on the source (names are case-sensitive)',
    );
    await destination.query('CREATE TABLE public.orders (id int)', [], 'bad');
    await expect(
      runMigrate({
        source: source.url('bad'),
        target: destination.url('bad'),
        name: 'bad3',
        workDir: join(dir, 'bad3'),
        out: sink().out,
      }),
    ).rejects.toThrow(
      'destination already has public.orders: drop it, map the table elsewhere with objects.include[].renameTo/renameTables, or set options.conflictMode: ignore to upsert into the existing table',
    );
    expect(await controlSchemaExists(destination, 'bad')).toBe(false);
    expect(
      (await source.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_replication_slots'))[0].n,
    ).toBe(0);
  });

  it('takes one snapshot for all tables while the source keeps writing', async () => {
    await source.createDatabase('busy');
    await destination.createDatabase('busy');
    await source.query(
      `CREATE TABLE a (id int PRIMARY KEY, n bigint); CREATE TABLE b (id int PRIMARY KEY, n bigint);
       INSERT INTO a VALUES (1, 0); INSERT INTO b VALUES (1, 0);
       CREATE TABLE filler (id int PRIMARY KEY, pad text); INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g;`,
      [],
      'busy',
    );
    const writer = await source.connect('busy');
    let stop = false;
    let commits = 0;
    const loop = (async () => {
      while (!stop) {
        await writer.query('BEGIN; UPDATE a SET n = n + 1; UPDATE b SET n = n + 1; COMMIT;');
        commits++;
      }
    })();
    try {
      await waitFor(() => commits, { reason: 'the writer to be running', until: (n) => n > 20 });
      const { code } = await runMigrate({
        source: source.url('busy'),
        target: destination.url('busy'),
        name: 'busy',
        workDir: join(dir, 'busy'),
        out: sink().out,
      });
      expect(code).toBe(0);
    } finally {
      stop = true;
      await loop;
      await writer.end();
    }
    const [ra] = await destination.query<{ n: string }>('SELECT n FROM a', [], 'busy');
    const [rb] = await destination.query<{ n: string }>('SELECT n FROM b', [], 'busy');
    expect(Number(ra.n)).toBeGreaterThan(20);
    expect(ra.n).toBe(rb.n);
    expect(Number(ra.n)).toBeLessThan(commits);

    // The task API reports the finished task from the destination's control schema.
    const api = await startTaskApi(resolveEndpoint({ url: destination.url('busy') }, 'destination'), 0);
    try {
      const status = (await (await fetch(`${api.url}/tasks/busy`)).json()) as TaskStatus;
      expect(status.phases.map((p: { phase: string; status: string }) => `${p.phase}:${p.status}`)).toEqual([
        'schema-pre:done',
        'full-data:done',
        'schema-post:done',
      ]);
      expect(status.fullData.rows).toBe(50002);
      expect(status.fullData.chunksDone).toBe(status.fullData.chunks);
      const missing = await fetch(`${api.url}/tasks/nope`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { message: string }).message).toBe(
        'task "nope" does not exist on this destination',
      );
      expect(await (await fetch(`${api.url}/tasks`)).json()).toEqual({ tasks: ['busy'] });
    } finally {
      await api.app.close();
    }
  });

  it('resumes after SIGKILL mid-copy with no duplicate and no missing row', async () => {
    await source.createDatabase('crash');
    await destination.createDatabase('crash');
    const s = await source.connect('crash');
    await loadPgbenchLike(s, { scale: 4, schema: 'public', mixedRows: 50_000 });
    const specFile = join(dir, 'crash.yaml');
    writeFileSync(
      specFile,
      JSON.stringify({
        name: 'crash',
        source: { url: source.url('crash') },
        destination: { url: destination.url('crash') },
        options: { chunkRows: 20000, snapshotWorkers: 2 },
      }),
    );
    const workDir = join(dir, 'crash-work');
    const child = spawn(process.execPath, [MAIN, 'migrate', '--spec', specFile, '--work-dir', workDir], {
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.once('exit', r));
    await waitFor(
      async () =>
        (
          await destination
            .query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pgferry.offsets WHERE next_offset > 0`,
              [],
              'crash',
            )
            .catch(() => [{ n: 0 }])
        )[0].n,
      {
        reason: 'the first migration to apply some rows',
        until: (n) => n > 0,
        timeout: 60_000,
        interval: 20,
      },
    );
    child.kill('SIGKILL');
    await exited;
    const partial = (
      await destination
        .query<{ n: number }>('SELECT count(*)::int AS n FROM public.pgbench_accounts', [], 'crash')
        .catch(() => [{ n: -1 }])
    )[0].n;
    expect(partial).toBeLessThan(400000);
    const again = spawn(process.execPath, [MAIN, 'migrate', '--spec', specFile, '--work-dir', workDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    again.stdout!.on('data', (d) => (output += d));
    again.stderr!.on('data', (d) => (output += d));
    const code = await new Promise((r) => again.once('exit', r));
    expect({ code, output: code === 0 ? '' : output }).toEqual({ code: 0, output: '' });
    const d = await destination.connect('crash');
    for (const [table, key] of [
      ['pgbench_accounts', 'aid'],
      ['pgbench_tellers', 'tid'],
      ['pgbench_branches', 'bid'],
      ['mixed_rows', 'id'],
    ]) {
      expect({ table, ...(await tableDigest(d, 'public', table, [key])) }).toEqual({
        table,
        ...(await tableDigest(s, 'public', table, [key])),
      });
    }
    expect((await s.query('SELECT count(*)::int AS n FROM pg_replication_slots')).rows[0].n).toBe(0);
    await d.end();
    await s.end();
  });
});
