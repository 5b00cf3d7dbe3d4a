import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  captureOutput,
  loadPgbenchLike,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
  brokerForTasks,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { startTaskApi } from './api/tasks.module';
import type { TaskStatus } from './api/task-status';
import { resolveEndpoint } from '@pgferry/pg';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

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
  // Real Kafka in the integration-kafka project: every migrate of this file goes there.
  let tasks: Awaited<ReturnType<typeof brokerForTasks>>;
  beforeAll(async () => {
    tasks = await brokerForTasks();
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
  });
  afterAll(async () => {
    await tasks?.stop();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad input before writing anything: wrong password, unknown table, keyless table until acknowledged, missing privilege, a destination table in the way', async () => {
    await source.createDatabase('bad');
    await destination.createDatabase('bad');
    await source.query('CREATE TABLE public.orders (id int PRIMARY KEY)', [], 'bad');
    const wrong = destination.url('bad').replace(destination.password, 'not-it');
    const a = captureOutput();
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

    const refused = async (name: string, extra: Partial<Parameters<typeof runMigrate>[0]> = {}) => {
      const o = captureOutput();
      const { code } = await runMigrate({
        source: source.url('bad'),
        target: destination.url('bad'),
        name,
        workDir: join(dir, name),
        out: o.out,
        ...extra,
      });
      expect({ code, nothingWritten: o.text().includes('nothing was written') }).toEqual({
        code: 1,
        nothingWritten: true,
      });
      return o.text();
    };
    expect(await refused('bad2', { tables: 'public.orders,public.nope' })).toContain(
      'table "public"."nope" does not exist on the source',
    );

    // A table without a key is an alert: it blocks until acknowledged by its id.
    await source.query('CREATE TABLE public."Audit Log" (at timestamptz, what text)', [], 'bad');
    const keyless = await refused('bad3', { tables: 'public."Audit Log"'.replace(/"/g, '') });
    expect(keyless).toContain(
      '"public"."Audit Log" has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows',
    );
    expect(keyless).toContain(`--ack 'keys:"public"."Audit Log"'`);
    // `pgferry check` gives the same verdict from the command line, and --ack clears the alert.
    const check = (...args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [
            MAIN,
            'check',
            '--source',
            source.url('bad'),
            '--target',
            destination.url('bad'),
            '--tables',
            'public.Audit Log',
            ...args,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        child.stdout!.on('data', (d) => (out += d));
        child.stderr!.on('data', (d) => (out += d));
        child.once('exit', (code) => resolve({ code, out }));
      });
    const unacked = await check();
    expect(unacked.code).toBe(1);
    expect(unacked.out).toContain(`--ack 'keys:"public"."Audit Log"'`);
    expect(unacked.out).not.toContain(source.password);
    const ackedCheck = await check('--ack', 'keys:"public"."Audit Log"');
    expect({ code: ackedCheck.code, out: ackedCheck.code ? ackedCheck.out : '' }).toEqual({
      code: 0,
      out: '',
    });

    await source.query(`INSERT INTO public."Audit Log" VALUES (now(), 'a'), (now(), 'b')`, [], 'bad');
    const acked = captureOutput();
    // With --api-port, the task API (loaded only then) answers while the task runs.
    const migration = runMigrate({
      source: source.url('bad'),
      target: destination.url('bad'),
      name: 'acked',
      tables: 'public.Audit Log',
      ack: ['keys:"public"."Audit Log"'],
      workDir: join(dir, 'acked'),
      apiPort: 0,
      out: acked.out,
    });
    const apiUrl = await waitFor(
      () => /^api\s+(http:\/\/127\.0\.0\.1:\d+\/tasks\/acked)$/m.exec(acked.text())?.[1],
      {
        reason: 'the migration to print its API address',
      },
    );
    const token = /^api token +(\S+) /m.exec(acked.text())?.[1];
    expect(readFileSync(join(dir, 'acked', 'api-token'), 'utf8')).toBe(`${token}\n`);
    const answer = await fetch(apiUrl!, { headers: { authorization: `Bearer ${token}` } });
    expect([200, 404]).toContain(answer.status);
    expect(JSON.stringify(await answer.json())).toContain('acked');
    const ok = await migration;
    expect({ code: ok.code, out: ok.code ? acked.text() : '' }).toEqual({ code: 0, out: '' });
    expect(acked.text()).toContain('1 alert(s) acknowledged: keys:"public"."Audit Log"');
    expect(
      await destination.query<{ n: number }>('SELECT count(*)::int AS n FROM public."Audit Log"', [], 'bad'),
    ).toEqual([{ n: 2 }]);
    await destination.query('DROP SCHEMA pgferry CASCADE', [], 'bad');

    // A role without SELECT on the table fails the privileges check, naming the grant to run.
    await source.query(
      `CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; REVOKE ALL ON public.orders FROM PUBLIC`,
      [],
      'bad',
    );
    const noPrivilege = await refused('bad4', {
      source: source.url('bad').replace(/\/\/[^@]+@/, '//reader:reader-pw@'),
      tables: 'public.orders',
    });
    expect(noPrivilege).toMatch(/GRANT SELECT ON (TABLE )?"?public"?\."?orders"? TO "?reader"?/);
    expect(noPrivilege).not.toContain('reader-pw');

    await destination.query('CREATE TABLE public.orders (id int)', [], 'bad');
    expect(await refused('bad5', { tables: 'public.orders' })).toContain(
      'destination already has table "public"."orders"',
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
      const busy = captureOutput();
      const { code } = await runMigrate({
        source: source.url('busy'),
        target: destination.url('busy'),
        name: 'busy',
        workDir: join(dir, 'busy'),
        out: busy.out,
      });
      expect(code).toBe(0);
      // On real Kafka (integration-kafka) the task went there, not to an embedded broker.
      expect(busy.text().includes('embedded broker')).toBe(tasks.broker === null);
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
    const access = { token: 'migrate-test-token', tokenHint: 'in the test' };
    const fetch = (url: string) =>
      globalThis.fetch(url, { headers: { authorization: `Bearer ${access.token}` } });
    const api = await startTaskApi(
      resolveEndpoint({ url: destination.url('busy') }, 'destination'),
      0,
      '127.0.0.1',
      access,
    );
    try {
      const status = (await (await fetch(`${api.url}/tasks/busy`)).json()) as TaskStatus;
      expect(status.phases.map((p: { phase: string; status: string }) => `${p.phase}:${p.status}`)).toEqual([
        'schema-pre:done',
        'full-data:done',
        'schema-post:done',
        'verify:done',
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
