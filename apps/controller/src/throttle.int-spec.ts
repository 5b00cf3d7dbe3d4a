import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  captureOutput,
  startPostgres,
  startTestBroker,
  tableDigest,
  waitFor,
  type PgCluster,
  type TestBroker,
} from '@pgferry/testing';
import { withKafkaAdmin } from '@pgferry/kafka';
import { resolveEndpoint } from '@pgferry/pg';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runThrottle } from './throttle-command';
import { readTaskStatus, type TaskStatus } from './api/task-status';
import { startTaskApi } from './api/tasks.module';
import { incrementalTasks, startSourceWriter } from './test/incremental-task';

/** One reading of the records in Kafka: when the request went out and when it came back. */
interface Sample {
  start: number;
  end: number;
  records: number;
}

/**
 * The highest rate over any two pairs of samples at least `seconds` apart whose first sample
 * was taken at or after `from`. Each pair's records are divided by the longest the interval can
 * have been (second reply minus first request), so a slow reading only lowers the rate: an
 * upper bound a busy machine cannot fail.
 */
function highestRate(samples: Sample[], from: number, seconds = 2): number {
  let worst = 0;
  for (let i = 0; i < samples.length; i++) {
    const a = samples[i];
    if (a.start < from) continue;
    const b = samples.find((s) => s.start - a.end >= seconds * 1000);
    if (!b) break;
    worst = Math.max(worst, (b.records - a.records) / ((b.end - a.start) / 1000));
  }
  return worst;
}

describe('throttling: options.throttle.full at the source, .incremental at the appliers, changed while running', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let broker: TestBroker;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-throttle-'));
  // A failed test stops its migrate (and the children) before the clusters go.
  const abort = new AbortController();
  let running: Promise<unknown> = Promise.resolve();
  beforeAll(async () => {
    [source, destination, broker] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
  });
  afterAll(async () => {
    abort.abort();
    await running.catch(() => undefined);
    await broker?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const { taskSpec, taskDatabases } = incrementalTasks(() => ({ source, destination, dir }));

  it('holds the full load to 20,000 rows/s and then to the 10,000 set by pgferry throttle; an incremental limit lets the lag grow until cleared through the API', async () => {
    const name = 'throttled';
    const { s, d } = await taskDatabases(name);
    await s.query(`CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL, v text NOT NULL)`);
    await s.query(`INSERT INTO items SELECT g, 0, md5(g::text) FROM generate_series(1, 100000) g`);
    const spec = taskSpec(name, { throttle: { full: { rowsPerSecond: 20_000 } }, snapshotWorkers: 2 });
    const out = captureOutput();
    const migration = runMigrate({
      spec,
      kafka: broker.brokers.join(','),
      schemaRegistry: broker.registryUrl,
      workDir: join(dir, name),
      out: out.out,
      signal: abort.signal,
    });
    migration.catch(() => undefined);
    running = migration;

    // The records in the table's topic, sampled until the full load has sent every row.
    const topic = `pgferry.${name}.public.items`;
    const samples: Sample[] = [];
    let changedAt = 0;
    let changed: Promise<number> | null = null;
    const said = captureOutput();
    await withKafkaAdmin(broker.client('pgferry-test-sampler'), async (admin) => {
      await waitFor(
        async () => {
          const start = performance.now();
          const ends = await admin.topicEnds([topic]).catch(() => null);
          if (!ends) return 0;
          const records = Number([...ends.values()].reduce((a, n) => a + n, 0n));
          samples.push({ start, end: performance.now(), records });
          // A new limit, set while the load runs (a third of the rows sent).
          if (!changed && records >= 30_000) {
            changedAt = performance.now();
            changed = runThrottle({ spec, fullRows: '10000' }, said.out);
          }
          return records;
        },
        {
          reason: 'the full load to send every row',
          until: (n) => n >= 100_000,
          timeout: 90_000,
          interval: 50,
        },
      );
    });
    expect(await changed).toBe(0);
    expect(said.text()).toMatch(/throttle of task throttled changed/);
    expect(said.text()).toMatch(/full +limit 10.0k rows\/s/);
    const first = samples.find((x) => x.records > 0)!;
    const last = samples[samples.length - 1];
    // Unthrottled, these 100,000 rows go in about a second; at 20,000 and then 10,000 rows/s they
    // take more than 4 s (a slow machine only makes it longer).
    expect((last.end - first.start) / 1000).toBeGreaterThan(4);
    // Never more than 10% above the limit over any 2 s window...
    expect(highestRate(samples, 0)).toBeLessThanOrEqual(22_000);
    // ...and the new one holds from the next window on (the capture reads the limits every second).
    expect(highestRate(samples, changedAt + 1500)).toBeLessThanOrEqual(11_000);
    // The status line showed the limit in force, the rate and that the load was throttled.
    expect(out.text()).toMatch(/throttle full 20.0k rows\/s, now [^\n]*rows\/s[^\n]*THROTTLED/);
    expect(out.text()).toMatch(/throttle full 10.0k rows\/s, now [^\n]*THROTTLED/);

    await waitFor(
      async () => (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (st) => st === 'running', timeout: 90_000 },
    );
    expect((await digests(s)).count).toBe(100_000);

    // 50 changes/s applied while the source makes about 200/s: the lag grows, in Kafka.
    expect(await runThrottle({ spec, incrementalRows: '50' }, captureOutput().out)).toBe(0);
    const writer = startWriter(s);
    try {
      const lag = await waitFor(async () => (await readTaskStatus(d, name))!, {
        reason: 'the lag to grow under the incremental limit',
        until: (st) => (st.stream?.lagSeconds ?? 0) > 6 && st.throttle?.incremental?.throttled === true,
        timeout: 60_000,
        interval: 250,
      });
      expect(lag.throttle!.limits.incremental).toEqual({ rowsPerSecond: 50 });
      expect(lag.stream!.notDelayed).toBe(false);
      await waitFor(() => out.text(), {
        reason: 'the lag line to show the incremental throttle',
        until: (t) => /stream .* DELAYED[^\n]*throttle incremental 50 rows\/s, now [^\n]*THROTTLED/.test(t),
        timeout: 30_000,
      });
    } finally {
      await writer.stop();
    }

    // Cleared through the task API: the applier catches up.
    const access = { token: 'throttle-test-token', tokenHint: 'in the test' };
    const api = await startTaskApi(
      resolveEndpoint({ url: destination.url(name) }, 'destination'),
      0,
      '127.0.0.1',
      access,
    );
    try {
      const post = (body: unknown) =>
        fetch(`${api.url}/tasks/${name}/throttle`, {
          method: 'POST',
          headers: { authorization: `Bearer ${access.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const bad = await post({ incremental: { rowsPerSecond: -5 } });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { message: string }).message).toMatch(
        /^invalid throttle change: incremental\.rowsPerSecond: Number must be greater than 0/,
      );
      const cleared = await post({ incremental: { rowsPerSecond: null } });
      expect(cleared.status).toBe(201);
      expect(((await cleared.json()) as TaskStatus).throttle!.limits).toEqual({
        full: { rowsPerSecond: 10_000 },
        incremental: {},
      });
    } finally {
      await api.app.close();
    }
    await waitFor(async () => (await readTaskStatus(d, name))!.stream!, {
      reason: 'the applier to catch up once the limit is cleared',
      until: (st) => st.notDelayed,
      timeout: 60_000,
      interval: 250,
    });

    const cut = captureOutput();
    expect(await runCutover({ spec, timeout: 60 }, cut.out)).toBe(0);
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(await digests(d)).toEqual(await digests(s));
  });
});

function digests(c: Client) {
  return tableDigest(c, 'public', 'items', ['id']);
}

/** About 200 changes a second on the source (10-row UPDATEs every 50 ms) until `stop()`. */
function startWriter(s: Client): { stop(): Promise<void> } {
  return startSourceWriter(
    (i) => s.query(`UPDATE items SET n = n + 1 WHERE id > $1 AND id <= $1 + 10`, [((i - 1) * 10) % 100_000]),
    50,
  );
}
