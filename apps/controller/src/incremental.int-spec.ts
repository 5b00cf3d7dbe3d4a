import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  captureOutput,
  loadPgbenchLike,
  runPgbench,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
  brokerForTasks,
} from '@pgferry/testing';
import { Kafka, logLevel } from 'kafkajs';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { decodeHeartbeatRecord, decodeTransactionRecord, type TransactionRecord } from '@pgferry/avro';
import { requestCutover } from '@pgferry/control';
import { embeddedDataDir, runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { readTaskStatus, type TaskStatus } from './api/task-status';
import { startTaskApi } from './api/tasks.module';
import { resolveEndpoint } from '@pgferry/pg';
import {
  digests,
  incrementalTasks,
  killWhileStreaming,
  leftovers,
  PGBENCH,
  reconnected,
} from './test/incremental-task';

describe('pgferry migrate --incremental: full load, then changes until cutover', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-incremental-'));
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
  const { taskSpec, taskDatabases } = incrementalTasks(() => ({ source, destination, dir }));

  it('streams 30 s of pgbench while the capture and then the applier are killed with SIGKILL and the destination restarts; after cutover every table is equal and release leaves nothing', async () => {
    const name = 'pgbench';
    const { s, d: opened } = await taskDatabases(name);
    // Replaced after the destination restarts.
    let d = opened;
    await loadPgbenchLike(s, { scale: 1, schema: 'public' });
    const workDir = join(dir, name);
    const spec = taskSpec(name, { chunkRows: 20_000, retry: { otherMinutes: 5 } });
    const out = captureOutput();
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
    for (const child of ['capture', 'applier'] as const)
      await killWhileStreaming(d, name, workDir, out, child);
    // A table created under the load is streamed by the child processes too.
    await s.query(`BEGIN;
                   CREATE TABLE extra (id int PRIMARY KEY, v text);
                   INSERT INTO extra SELECT g, 'v' || g FROM generate_series(1, 1000) g;
                   COMMIT`);
    await s.query(`UPDATE extra SET v = 'w' WHERE id % 7 = 0`);
    // The destination restarts under the stream: the applier's and the controller's connections
    // are cut; the applier is restarted, the controller reconnects, nothing is lost.
    await d.end();
    await destination.restart!();
    d = await reconnected(destination, name);
    await s.query(`DELETE FROM extra WHERE id > 990`);
    const load = await bench;
    expect(load.transactions).toBeGreaterThan(1000);

    const cut = captureOutput();
    const code = await runCutover({ spec, timeout: 120 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    expect(cut.text()).toMatch(/cutover done: \d+ sequences set; /);
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text()).toMatch(/incremental {2}done: caught up to source position/);
    expect(out.text()).toMatch(/lost a connection \(.*\); reconnecting/);
    // On real Kafka (integration-kafka) the task went there, not to an embedded broker.
    expect(out.text().includes('embedded broker')).toBe(tasks.broker === null);
    expect(out.text()).not.toContain(source.password);

    const want = await digests(s, PGBENCH);
    expect(want.pgbench_history.count).toBe(load.transactions);
    expect(await digests(d, PGBENCH)).toEqual(want);
    expect(out.text()).toMatch(/stream +gained "public"\."extra" \(created or renamed on the source\)/);
    const extra: Array<[string, string[]]> = [['extra', ['id']]];
    expect(await digests(d, extra)).toEqual(await digests(s, extra));

    // The task API shows the stream caught up.
    const status = (await readTaskStatus(d, name))!;
    expect(status.phase).toBe('cutover');
    expect(status.stream!.appliedLsn).not.toBeNull();

    const rel = captureOutput();
    expect(await runRelease({ spec }, rel.out)).toBe(0);
    expect(await leftovers(s)).toEqual({ slots: [], publications: [], triggers: [], tables: [] });
    await s.end();
    await d.end();
  }, 300_000);

  it('carries inserts, updates with a TOASTed column unchanged, key changes, deletes, truncate and a 1M-row transaction (in-process)', async () => {
    const name = 'changes';
    const { s, d } = await taskDatabases(name);
    await s.query(`
      CREATE TABLE public."Orders" (id int PRIMARY KEY, note text, doc text, qty int NOT NULL);
      ALTER TABLE public."Orders" ALTER COLUMN doc SET STORAGE EXTERNAL;
      CREATE TABLE public.history (at timestamptz, what jsonb);
      ALTER TABLE public.history REPLICA IDENTITY FULL;
      CREATE TABLE public.big (id bigint PRIMARY KEY, v text);
      INSERT INTO "Orders" SELECT g, 'n' || g, CASE WHEN g BETWEEN 51 AND 60 THEN NULL ELSE repeat('x', 5000) || g END, g
        FROM generate_series(1, 200) g;
      CREATE TABLE public.docs (id int PRIMARY KEY, body text, n int);
      ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL;
      ALTER TABLE public.docs REPLICA IDENTITY FULL;
      INSERT INTO docs SELECT g, repeat('d', 8000) || g, g FROM generate_series(1, 40) g;
      INSERT INTO history VALUES ('2024-01-01', '{"before": "load"}');`);
    const out = captureOutput();
    const migration = runMigrate({
      source: source.url(name),
      target: destination.url(name),
      name,
      incremental: true,
      inProcess: true,
      workDir: join(dir, name),
      out: out.out,
    });
    migration.catch(() => undefined);
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (v) => v === 'running', timeout: 60_000 },
    );
    await s.query(`UPDATE "Orders" SET qty = qty + 1 WHERE id <= 50`); // doc unchanged: not sent
    await s.query(`UPDATE "Orders" SET id = id + 1000 WHERE id BETWEEN 51 AND 60`); // key change
    // A key change that leaves a TOASTed value unchanged: replica identity full sends the old row whole.
    await s.query(`UPDATE docs SET id = id + 100, n = n + 1 WHERE id <= 20`);
    await s.query(`DELETE FROM "Orders" WHERE id BETWEEN 100 AND 119`);
    await s.query(
      `INSERT INTO "Orders" SELECT g, NULL, repeat('z', 9000), g FROM generate_series(300, 320) g`,
    );
    await s.query(
      `INSERT INTO history SELECT now() + g * interval '1 s', jsonb_build_object('g', g) FROM generate_series(1, 30) g`,
    );
    await s.query(
      `DELETE FROM history WHERE what->>'g' = '7'; UPDATE history SET what = '{"u": 1}' WHERE what->>'g' = '8'`,
    );
    await s.query(`TRUNCATE history; INSERT INTO history VALUES ('2025-01-01', '{"after": "truncate"}')`);
    // Schema changes mid-stream, back to back: a column added, one renamed, each with its data.
    await s.query(`ALTER TABLE "Orders" ADD COLUMN extra text DEFAULT 'new'`);
    await s.query(`INSERT INTO "Orders" VALUES (500, 'after add', NULL, 5, 'extra 500')`);
    await s.query(`ALTER TABLE "Orders" RENAME COLUMN note TO "Note Ü"`);
    await s.query(
      `UPDATE "Orders" SET "Note Ü" = 'renamed ' || id, extra = 'x' WHERE id BETWEEN 120 AND 130`,
    );
    // A schema change and a row in one simple-protocol string: only the ALTER is replayed, the
    // row comes once, through the stream (history has no key: a second copy shows in its digest).
    await s.query(
      `ALTER TABLE "Orders" ADD COLUMN once int; INSERT INTO history VALUES ('2025-06-01', '{"with": "ddl"}')`,
    );
    // One transaction of a million rows: streamed by the server while in progress, spooled by the capture.
    await s.query(`INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g`);
    await s.query(`UPDATE big SET v = 'changed' WHERE id % 1000 = 0`);
    await requestCutover(d, name);
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    const columns = async (c: Client) =>
      (
        await c.query(
          `SELECT column_name FROM information_schema.columns WHERE table_name = 'Orders' ORDER BY ordinal_position`,
        )
      ).rows.map((r) => r.column_name);
    expect(await columns(d)).toEqual(['id', 'Note Ü', 'doc', 'qty', 'extra', 'once']);
    const tables: Array<[string, string[]]> = [
      ['Orders', ['id']],
      ['history', ['at', 'what']],
      ['big', ['id']],
      ['docs', ['id']],
    ];
    const want = await digests(s, tables);
    expect(want.big.count).toBe(1_000_000);
    expect(await digests(d, tables)).toEqual(want);
    // Unchanged TOAST values were kept, never nulled.
    expect(
      (
        await d.query(
          `SELECT count(*)::int AS n FROM "Orders" WHERE id NOT BETWEEN 1051 AND 1060 AND id <> 500 AND (doc IS NULL OR length(doc) < 5000)`,
        )
      ).rows[0].n,
    ).toBe(0);
    expect(
      (await d.query(`SELECT count(*)::int AS n FROM docs WHERE id > 100 AND length(body) > 8000`)).rows[0].n,
    ).toBe(20);
    expect(await runRelease({ source: source.url(name), name }, captureOutput().out)).toBe(0);
    await s.end();
    await d.end();
  }, 300_000);

  it('stops cleanly when asked, resumes streaming from the slot when run again, and rides out a destination restart (in-process)', async () => {
    const name = 'resume';
    const { s, d: opened } = await taskDatabases(name);
    // Replaced after the destination restarts.
    let d = opened;
    await s.query(`CREATE TABLE "Counter Ü" (id int PRIMARY KEY, n bigint NOT NULL, seq serial);
                   INSERT INTO "Counter Ü" (id, n) SELECT g, 0 FROM generate_series(1, 100) g`);
    const run = (signal?: AbortSignal) => {
      const out = captureOutput();
      const migration = runMigrate({
        source: source.url(name),
        target: destination.url(name),
        name,
        incremental: true,
        inProcess: true,
        workDir: join(dir, name),
        out: out.out,
        signal,
      });
      migration.catch(() => undefined);
      return { out, migration };
    };
    const streaming = () =>
      waitFor(async () => (await readTaskStatus(d, name))?.stream?.appliedLsn ?? null, {
        reason: 'the stream to apply a first mark',
        until: (lsn) => lsn !== null,
        timeout: 60_000,
      });
    const stop = new AbortController();
    const first = run(stop.signal);
    await streaming();
    await s.query(`UPDATE "Counter Ü" SET n = n + 1`);
    // A table created mid-stream in the schema the task takes whole is streamed from its
    // CREATE on, rows of the creating transaction included.
    await s.query(`BEGIN;
                   CREATE TABLE "Neu Ü" (id int PRIMARY KEY, n int NOT NULL, seq serial);
                   INSERT INTO "Neu Ü" (id, n) SELECT g, g FROM generate_series(1, 20) g;
                   COMMIT`);
    await waitFor(() => first.out.text(), {
      reason: 'the stream to gain the new table',
      until: (t) => /stream +gained "public"\."Neu Ü" \(created or renamed on the source\)/.test(t),
      timeout: 60_000,
    });
    await s.query(`UPDATE "Neu Ü" SET n = n * 2 WHERE id <= 10; DELETE FROM "Neu Ü" WHERE id = 20`);
    await waitFor(
      async () => (await d.query(`SELECT count(*)::int AS c, sum(n)::int AS n FROM "Neu Ü"`)).rows[0],
      {
        reason: "the new table's rows on the destination",
        until: (r) => r.c === 19 && r.n === 245,
        timeout: 60_000,
      },
    );
    stop.abort();
    const stopped = await first.migration;
    expect(stopped.code).toBe(130);
    expect(first.out.text()).toContain('stopped before cutover');
    // Written while nothing streams: the slot keeps it.
    await s.query(`UPDATE "Counter Ü" SET n = n + 10 WHERE id <= 50; DELETE FROM "Counter Ü" WHERE id > 90`);
    await s.query(`INSERT INTO "Counter Ü" (id, n) VALUES (500, 5)`);
    await s.query(
      `INSERT INTO "Neu Ü" (id, n) VALUES (100, 1), (101, 2); UPDATE "Neu Ü" SET n = 0 WHERE id = 1`,
    );
    const second = run();
    await waitFor(() => second.out.text(), {
      reason: 'the second run to stream',
      until: (t) => /stream +source/.test(t),
      timeout: 60_000,
    });
    // The destination restarts: the in-process applier is replaced, the controller reconnects.
    await d.end();
    await destination.restart!();
    d = await reconnected(destination, name);
    await s.query(`UPDATE "Counter Ü" SET n = n + 100 WHERE id <= 5`);
    await s.query(`INSERT INTO "Neu Ü" (id, n) VALUES (102, 3)`);
    // The task has no include: a schema created mid-stream is taken too, with its tables.
    await s.query(`CREATE SCHEMA "Später"`);
    await s.query(`BEGIN;
                   CREATE TABLE "Später".x (id int PRIMARY KEY, v text);
                   INSERT INTO "Später".x SELECT g, 'v' || g FROM generate_series(1, 30) g;
                   COMMIT;
                   UPDATE "Später".x SET v = 'w' WHERE id < 5`);
    // Through the task API this time: the stream's positions, then the cutover request.
    const access = { token: 'incremental-test-token', tokenHint: 'in the test' };
    const authorization = { authorization: `Bearer ${access.token}` };
    const api = await startTaskApi(
      resolveEndpoint({ url: destination.url(name) }, 'destination'),
      0,
      '127.0.0.1',
      access,
    );
    try {
      const status = (await (
        await fetch(`${api.url}/tasks/${name}`, { headers: authorization })
      ).json()) as TaskStatus;
      expect(status.phase).toBe('incremental');
      expect(status.stream).toEqual(
        expect.objectContaining({
          appliedLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
          notDelayed: expect.any(Boolean),
        }),
      );
      const asked = await fetch(`${api.url}/tasks/${name}/cutover`, {
        method: 'POST',
        headers: authorization,
      });
      expect(asked.status).toBe(201);
      expect(((await asked.json()) as TaskStatus).stream!.cutoverRequestedAt).not.toBeNull();
    } finally {
      await api.app.close();
    }
    const done = await second.migration;
    expect({ code: done.code, out: done.code ? second.out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(second.out.text()).toMatch(/full-data +skipped: done by an earlier run/);
    const table: Array<[string, string[]]> = [
      ['Counter Ü', ['id']],
      ['Neu Ü', ['id']],
    ];
    expect(await digests(d, table)).toEqual(await digests(s, table));
    expect(await tableDigest(d, 'Später', 'x', ['id'])).toEqual(await tableDigest(s, 'Später', 'x', ['id']));
    expect((await tableDigest(d, 'Später', 'x', ['id'])).count).toBe(30);
    // The transaction topic, read back from the broker (on the embedded one, from its files):
    // BEGIN and END around each source transaction, END with its per-table counts.
    // The embedded broker's data is the run's own (see embeddedDataDir).
    const { rows: runs } = await d.query(`SELECT run_id FROM pgferry.tasks WHERE task = $1`, [name]);
    const broker =
      tasks.broker ??
      (await startEmbeddedKafka({
        dataDir: embeddedDataDir(join(dir, name), runs[0].run_id),
        port: 0,
        registryPort: 0,
      }));
    try {
      const kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      const consumer = kafka.consumer({ groupId: 'reader' });
      const seen: TransactionRecord[] = [];
      const beats: Array<{ key: string; ts: number }> = [];
      await consumer.connect();
      await consumer.subscribe({
        topics: [`pgferry.${name}.transactions`, `pgferry.${name}.heartbeat`],
        fromBeginning: true,
      });
      await consumer.run({
        eachMessage: async ({ topic, message }) => {
          if (topic.endsWith('.heartbeat'))
            beats.push({
              key: message.key!.toString('latin1'),
              ts: decodeHeartbeatRecord(message.value!).ts_ms,
            });
          else seen.push(decodeTransactionRecord(message.value!));
        },
      });
      await waitFor(() => [seen.length, beats.length], {
        reason: 'the transaction and heartbeat records',
        until: ([n, b]) => n >= 6 && b >= 3,
        timeout: 30_000,
      });
      await consumer.disconnect();
      // The heartbeat topic: one key (the server name), beats in commit order, from this run.
      expect(new Set(beats.map((b) => b.key)).size).toBe(1);
      expect(beats[0].key).toContain(`pgferry.${name}`);
      expect(beats.map((b) => b.ts)).toEqual([...beats.map((b) => b.ts)].sort((a, b) => a - b));
      expect(Date.now() - beats[0].ts).toBeLessThan(180_000);
      expect(seen.filter((r) => r.status === 'BEGIN').length).toBe(
        seen.filter((r) => r.status === 'END').length,
      );
      expect(seen).toContainEqual(
        expect.objectContaining({
          status: 'END',
          event_count: 60, // 50 updates and 10 deletes, one transaction
          data_collections: [{ data_collection: 'public.Counter Ü', event_count: 60 }],
        }),
      );
    } finally {
      if (!tasks.broker) await broker.close();
    }
    // Cutover carried the sequence past the source's last value.
    expect((await d.query(`SELECT last_value::int AS v FROM "Counter Ü_seq_seq"`)).rows[0].v).toBe(101);
    expect((await d.query(`SELECT last_value::int AS v FROM "Neu Ü_seq_seq"`)).rows[0].v).toBe(23);
    expect(await runRelease({ source: source.url(name), name }, captureOutput().out)).toBe(0);
    await s.end();
    await d.end();
  }, 180_000);
});
