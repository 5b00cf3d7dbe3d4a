import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Client } from 'pg';
import {
  loadPgbenchLike,
  runPgbench,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { readTaskStatus } from './api/task-status';

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

const PGBENCH: Array<[string, string[]]> = [
  ['pgbench_accounts', ['aid']],
  ['pgbench_tellers', ['tid']],
  ['pgbench_branches', ['bid']],
  // No key: replica identity full; ordered by every column.
  ['pgbench_history', ['tid', 'bid', 'aid', 'delta', 'mtime', 'filler']],
];

async function digests(c: Client, tables: Array<[string, string[]]>) {
  const out: Record<string, { count: number; md5: string }> = {};
  for (const [table, key] of tables) out[table] = await tableDigest(c, 'public', table, key);
  return out;
}

function readPid(file: string): number | null {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

/** Source objects a task leaves behind: slots, publications, event triggers, pgferry tables. */
async function leftovers(c: Client) {
  const q = async (sql: string) => (await c.query(sql)).rows.map((r) => Object.values(r)[0] as string);
  return {
    slots: await q(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgferry%'`),
    publications: await q(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgferry%'`),
    triggers: await q(`SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'pgferry%'`),
    tables: await q(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgferry'`,
    ),
  };
}

describe('pgferry migrate --incremental: full load, then changes until cutover', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-incremental-'));
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('streams 30 s of pgbench while the capture and then the applier are killed with SIGKILL; after cutover every table is equal and release leaves nothing', async () => {
    const name = 'pgbench';
    await source.createDatabase(name);
    await destination.createDatabase(name);
    const s = await source.connect(name);
    const d = await destination.connect(name);
    await loadPgbenchLike(s, { scale: 1, schema: 'public' });
    const workDir = join(dir, name);
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        options: { chunkRows: 20_000, retry: { otherMinutes: 5 } },
      }),
    );
    const out = sink();
    const migration = runMigrate({ spec, workDir, out: out.out });
    migration.catch(() => undefined);
    // pgbench starts while the full load runs: its changes reach the destination through the slot.
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await d.query(`SELECT 1 FROM pgferry.phases WHERE phase = 'full-data'`)).rowCount,
      { reason: 'the full-data phase to start', timeout: 60_000, interval: 50 },
    );
    const bench = runPgbench(
      { host: source.host, port: source.port, user: source.user, password: source.password },
      { database: name, clients: 4, seconds: 30 },
    );
    const incremental = async () =>
      (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status === 'running';
    await waitFor(incremental, { reason: 'the incremental phase to start', timeout: 60_000 });
    // The stream is applying pgbench's changes: kill the capture, let it come back, then the applier.
    for (const child of ['capture', 'applier']) {
      const before = (await readTaskStatus(d, name))!.stream!.appliedRecords;
      await waitFor(async () => (await readTaskStatus(d, name))!.stream!.appliedRecords, {
        reason: `changes to be applied before killing the ${child}`,
        until: (n) => n > before + 500,
        timeout: 60_000,
      });
      const pid = readPid(join(workDir, `${child}.pid`));
      expect(pid).not.toBeNull();
      process.kill(pid!, 'SIGKILL');
      await waitFor(() => out.text(), {
        reason: `the ${child} to be restarted`,
        until: (t) => t.includes(`${child.padEnd(12)} pid ${pid} was killed by SIGKILL; restart 1`),
        timeout: 30_000,
      });
    }
    const load = await bench;
    expect(load.transactions).toBeGreaterThan(1000);

    const cut = sink();
    const code = await runCutover({ spec, timeout: 120 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    expect(cut.text()).toMatch(/cutover done: \d+ sequences set; /);
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text()).toMatch(/incremental {2}done: caught up to source position/);
    expect(out.text()).not.toContain(source.password);

    const want = await digests(s, PGBENCH);
    expect(want.pgbench_history.count).toBe(load.transactions);
    expect(await digests(d, PGBENCH)).toEqual(want);

    // The task API shows the stream caught up.
    const status = (await readTaskStatus(d, name))!;
    expect(status.phase).toBe('cutover');
    expect(status.stream!.appliedLsn).not.toBeNull();

    const rel = sink();
    expect(await runRelease({ spec }, rel.out)).toBe(0);
    expect(await leftovers(s)).toEqual({ slots: [], publications: [], triggers: [], tables: [] });
    await s.end();
    await d.end();
  }, 300_000);
});
