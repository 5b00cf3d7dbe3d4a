import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  captureOutput,
  startPostgres,
  startStallingProxy,
  tableDigest,
  waitFor,
  type PgCluster,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { readTaskStatus } from './api/task-status';
import { incrementalTasks, reconnected, startItemsWriter } from './test/incremental-task';

/** Faults the incremental phase must ride out, or stop on with what to do (issue 19). */
describe('pgferry migrate under faults', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-faults-'));
  beforeAll(async () => {
    [source, destination] = await Promise.all([
      // Small, so a stopped stream's slot is invalidated after a few WAL segments.
      startPostgres({ logical: true, settings: { max_slot_wal_keep_size: '1MB' } }),
      startPostgres(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const { taskSpec, taskDatabases } = incrementalTasks(() => ({ source, destination, dir }));

  /** Waits until the task streams and has applied a change made now on the source. */
  async function streaming(s: Client, d: Client, name: string): Promise<void> {
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (s) => s === 'running', timeout: 60_000 },
    );
    await s.query(
      `INSERT INTO items VALUES (0, 'streamed', 0) ON CONFLICT (id) DO UPDATE SET v = 'streamed'`,
    );
    await waitFor(() => d.query(`SELECT 1 FROM items WHERE id = 0 AND v = 'streamed'`), {
      reason: 'a change to be streamed',
      until: (r) => r.rowCount === 1,
      timeout: 60_000,
    });
  }

  async function items(name: string): Promise<{ s: Client; d: Client }> {
    const dbs = await taskDatabases(name);
    await dbs.s.query(`CREATE TABLE items (id int PRIMARY KEY, v text, n int NOT NULL);
      INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 2000) g`);
    return dbs;
  }

  it('rides out a 20 s destination outage, longer than retry.otherMinutes, within retry.connectionMinutes; the tables are equal after cutover', async () => {
    const name = 'outage';
    const { s, d: opened } = await items(name);
    let d = opened;
    // otherMinutes 0.1 (6 s): before the windows were told apart, the applier's restarts were
    // capped there and the task failed a few seconds into the outage.
    const spec = taskSpec(name, { retry: { connectionMinutes: 2, otherMinutes: 0.1 } });
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir: join(dir, name), out: out.out });
    migration.catch(() => undefined);
    await streaming(s, d, name);
    // The source keeps changing while the destination is down.
    const writer = startItemsWriter(s);
    await d.end();
    await destination.restart!({ downMs: 20_000 });
    d = await reconnected(destination, name);
    await writer.stop();
    const cut = captureOutput();
    const code = await runCutover({ spec, timeout: 120 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    // The applier lost the destination and was started again, within the connection window.
    expect(out.text()).toMatch(/applier +pid \d+ exited with code 1 \(.*\); restart \d+/);
    expect(await tableDigest(d, 'public', 'items', ['id'])).toEqual(
      await tableDigest(s, 'public', 'items', ['id']),
    );
    await s.end();
    await d.end();
  }, 240_000);

  it('shows the WAL the slot retains, warns over options.walRetainedAlertBytes, and refuses to resume a slot the source invalidated, saying how to start over', async () => {
    const name = 'lostslot';
    const { s, d } = await items(name);
    const spec = taskSpec(name, { walRetainedAlertBytes: 1 });
    const out = captureOutput();
    const stop = new AbortController();
    const migration = runMigrate({
      spec,
      workDir: join(dir, name),
      out: out.out,
      signal: stop.signal,
      inProcess: true,
    });
    migration.catch(() => undefined);
    await streaming(s, d, name);
    const slot = await waitFor(async () => (await readTaskStatus(d, name))?.stream?.slot, {
      reason: 'the capture to report the slot',
      until: (slot) => !!slot,
      timeout: 30_000,
    });
    expect(slot).toMatchObject({ walStatus: 'reserved', maxSlotWalKeepSizeBytes: 1048576 });
    expect(slot!.retainedBytes).toBeGreaterThan(0);
    expect(slot!.safeWalSizeBytes).toEqual(expect.any(Number));
    await waitFor(() => out.text(), {
      reason: 'the lag line with the slot and the alert',
      until: (t) =>
        /slot retains [\d.]+ k?B/.test(t) && t.includes('over options.walRetainedAlertBytes (1 B)'),
      timeout: 30_000,
    });
    stop.abort();
    expect((await migration).code).toBe(130);
    // With no capture, WAL past max_slot_wal_keep_size and a checkpoint invalidate the slot.
    await waitFor(
      async () => {
        await source.query(
          `CREATE TABLE IF NOT EXISTS fill (v text); INSERT INTO fill SELECT repeat('x', 1000) FROM generate_series(1, 5000)`,
        );
        await source.query(`SELECT pg_switch_wal()`);
        await source.query('CHECKPOINT');
        return (
          await s.query(`SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pgferry_lostslot'`)
        ).rows[0]?.wal_status;
      },
      { reason: 'the slot to be invalidated', until: (w) => w === 'lost', timeout: 60_000 },
    );
    const again = captureOutput();
    const rerun = await runMigrate({ spec, workDir: join(dir, name), out: again.out, inProcess: true });
    expect(rerun.code).toBe(1);
    expect(again.text()).toMatch(
      /replication slot pgferry_lostslot already exists on the source and the destination records it for task lostslot, but the source invalidated it \(wal_status lost\).*start over: pgferry release/,
    );
    expect(again.text()).toContain('nothing was written');
    await s.end();
    await d.end();
  }, 180_000);

  it('notices a silent drop between the applier and the destination (a proxy that stops forwarding, never closing) and recovers; the tables are equal after cutover', async () => {
    const name = 'silent';
    const { s, d } = await items(name);
    const proxy = await startStallingProxy({ host: destination.host, port: destination.port });
    try {
      const through = new URL(destination.url(name));
      through.host = `${proxy.host}:${proxy.port}`;
      const spec = join(dir, `${name}.json`);
      writeFileSync(
        spec,
        JSON.stringify({
          name,
          source: { url: source.url(name) },
          destination: { url: through.toString() },
          migrationTypes: { incremental: true },
          options: { stallSeconds: 10 },
        }),
      );
      const out = captureOutput();
      const migration = runMigrate({ spec, workDir: join(dir, name), out: out.out });
      migration.catch(() => undefined);
      await streaming(s, d, name);
      // The applier's connections go silent; TCP keepalives are answered by the proxy's host,
      // so only pgferry's own watch can tell.
      expect(proxy.stall('pgferry applier')).toBeGreaterThan(0);
      for (let i = 1; i <= 20; i++)
        await s.query(`UPDATE items SET n = n + 1, v = 'silent' || $1 WHERE id % 20 = $1 % 20`, [i]);
      await waitFor(() => out.text(), {
        reason: 'the watchdog to restart the stuck applier',
        until: (t) => /restarting the applier: the applier has applied nothing for 10 s/.test(t),
        timeout: 60_000,
      });
      const cut = captureOutput();
      const code = await runCutover({ spec, timeout: 120 }, cut.out);
      expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
      const done = await migration;
      expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
      expect(await tableDigest(d, 'public', 'items', ['id'])).toEqual(
        await tableDigest(s, 'public', 'items', ['id']),
      );
    } finally {
      await proxy.close();
    }
    await s.end();
    await d.end();
  }, 240_000);
});
