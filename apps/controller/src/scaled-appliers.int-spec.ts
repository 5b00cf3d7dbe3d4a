import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  captureOutput,
  loadPgbenchLike,
  runPgbench,
  startPostgres,
  startTestBroker,
  waitFor,
  type PgCluster,
  type TestBroker,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { readTaskStatus } from './api/task-status';
import { digests, PGBENCH } from './test/incremental-task';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

/** A `pgferry capture` or `pgferry applier` on a machine of its own: a process with its output kept. */
interface Remote {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function remote(role: 'capture' | 'applier', specFile: string): Remote {
  const child = spawn(process.execPath, [MAIN, role, '--spec', specFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function leaseHolderPid(d: Client, task: string): Promise<number | null> {
  const { rows } = await d.query(
    `SELECT holder FROM pgferry.leases WHERE task = $1 AND role = 'capture' AND expires_at > now()`,
    [task],
  );
  return rows.length ? Number(String(rows[0].holder).split(':').pop()) : null;
}

describe('the distributed topology as processes: migrate, two captures on a lease, three appliers in one group', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let broker: TestBroker;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-scaled-'));
  const remotes: Remote[] = [];
  beforeAll(async () => {
    [source, destination, broker] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
  });
  afterAll(async () => {
    for (const r of remotes) r.child.kill('SIGKILL');
    await Promise.all([source?.stop(), destination?.stop(), broker?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps exactly-once under pgbench when the streaming capture and an applier are killed with SIGKILL; tables equal after cutover', async () => {
    const name = 'scaled';
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    const s = await source.connect(name);
    const d = await destination.connect(name);
    await loadPgbenchLike(s, { scale: 1, schema: 'public' });
    const specFile = join(dir, `${name}.json`);
    writeFileSync(
      specFile,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl },
        options: { stream: { capture: 'external', appliers: 0 }, retry: { otherMinutes: 5 } },
      }),
    );
    const out = captureOutput();
    const migration = runMigrate({ spec: specFile, workDir: join(dir, 'controller'), out: out.out });
    migration.catch(() => undefined);
    const captures = [remote('capture', specFile), remote('capture', specFile)];
    const appliers = [remote('applier', specFile), remote('applier', specFile), remote('applier', specFile)];
    remotes.push(...captures, ...appliers);

    await waitFor(async () => (await readTaskStatus(d, name).catch(() => null))?.phase, {
      reason: 'the incremental phase to start',
      until: (phase) => phase === 'incremental',
      timeout: 120_000,
    });
    const first = await waitFor(() => leaseHolderPid(d, name), {
      reason: 'one capture to take the lease',
      until: (pid) => pid !== null,
      timeout: 60_000,
    });
    const active = captures.find((c) => c.child.pid === first)!;
    const standby = captures.find((c) => c !== active)!;
    await waitFor(() => standby.output(), {
      reason: 'the other capture to stand by',
      until: (t) => t.includes(`standing by: the capture lease is held by`),
      timeout: 30_000,
    });

    const bench = runPgbench(
      { host: source.host, port: source.port, user: source.user, password: source.password },
      { database: name, clients: 4, seconds: 20 },
    );
    const applied = async () => (await readTaskStatus(d, name))!.stream!.appliedRecords;
    const before = await applied();
    await waitFor(applied, {
      reason: 'changes to be applied',
      until: (n) => n > before + 500,
      timeout: 60_000,
    });
    // The streaming capture dies: the standby takes over once the lease lapses.
    active.child.kill('SIGKILL');
    await waitFor(() => standby.output(), {
      reason: 'the standby capture to take over',
      until: (t) => t.includes('streaming: this capture holds the lease now'),
      timeout: 60_000,
    });
    // An applier dies mid-stream: the group gives its partitions to the other two.
    const killed = appliers[1];
    killed.child.kill('SIGKILL');
    const afterKill = await applied();
    await waitFor(applied, {
      reason: 'the other appliers to go on',
      until: (n) => n > afterKill + 500,
      timeout: 90_000,
    });
    const load = await bench;
    expect(load.transactions).toBeGreaterThan(500);

    const cut = captureOutput();
    const code = await runCutover({ spec: specFile, timeout: 180 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });

    const want = await digests(s, PGBENCH);
    expect(want.pgbench_history.count).toBe(load.transactions);
    // pgbench_history has no key: a batch applied twice by two appliers would show here.
    expect(await digests(d, PGBENCH)).toEqual(want);
    // The survivors see the phase done and exit cleanly.
    for (const r of [standby, appliers[0], appliers[2]]) {
      expect({ code: await r.exited, out: r.output().includes('the incremental phase is done') }).toEqual({
        code: 0,
        out: true,
      });
    }
    await s.end();
    await d.end();
  }, 420_000);
});
