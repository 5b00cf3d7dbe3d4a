import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  captureOutput,
  startPostgres,
  startTestBroker,
  tableDigest,
  waitFor,
  type PgCluster,
  type TestBroker,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { readTaskStatus } from './api/task-status';
import { incrementalTasks, startItemsWriter } from './test/incremental-task';

// The broker runs apart from the task (real Kafka in integration-kafka, the embedded broker in a
// process of its own here), so it can be stopped and started again under it.
describe('pgferry migrate when the Kafka broker restarts during streaming', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let broker: TestBroker;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-broker-restart-'));
  beforeAll(async () => {
    [source, destination, broker] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
  });
  afterAll(async () => {
    await broker?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const { taskDatabases } = incrementalTasks(() => ({ source, destination, dir }));

  it('rides out a broker down for 70 s as a lost connection (retry.connectionMinutes, not otherMinutes); the tables are equal after cutover', async () => {
    const name = 'brokerrestart';
    const { s, d } = await taskDatabases(name);
    await s.query(`CREATE TABLE items (id int PRIMARY KEY, v text, n int NOT NULL);
      INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 2000) g`);
    // otherMinutes 0.1 (6 s): a broker restart counted as an "other" failure gives up within it.
    // 70 s outlasts the clients' own retries (the fetcher's 60 s), so the children exit and
    // their supervisors start them again until the broker is back.
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl },
        migrationTypes: { incremental: true },
        options: { retry: { connectionMinutes: 3, otherMinutes: 0.1 } },
      }),
    );
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir: join(dir, name), out: out.out });
    migration.catch(() => undefined);
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (st) => st === 'running', timeout: 90_000 },
    );
    await s.query(`UPDATE items SET v = 'before' WHERE id <= 100`);
    await waitFor(() => d.query(`SELECT count(*)::int AS n FROM items WHERE v = 'before'`), {
      reason: 'changes to be streamed before the restart',
      until: (r) => r.rows[0].n === 100,
      timeout: 60_000,
    });
    const writer = startItemsWriter(s);
    await broker.stopFor(70_000);
    // Changes made after the broker is back arrive too.
    const atRestart = writer.writes;
    await waitFor(() => writer.writes, {
      reason: 'changes made after the broker is back',
      until: (n) => n >= atRestart + 20,
      timeout: 30_000,
    });
    await writer.stop();
    const cut = captureOutput();
    const code = await runCutover({ spec, timeout: 180 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(await tableDigest(d, 'public', 'items', ['id'])).toEqual(
      await tableDigest(s, 'public', 'items', ['id']),
    );
    await s.end();
    await d.end();
  }, 360_000);
});
