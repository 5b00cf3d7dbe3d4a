import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  readPidFile,
  captureOutput,
  loadPgbenchLike,
  runPgbench,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
} from '@pgferry/testing';
import { Kafka, logLevel } from 'kafkajs';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { decodeHeartbeatRecord, decodeTransactionRecord, type TransactionRecord } from '@pgferry/avro';
import { requestCutover } from '@pgferry/control';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { readTaskStatus, type TaskStatus } from './api/task-status';
import { startTaskApi } from './api/tasks.module';
import { resolveEndpoint } from '@pgferry/pg';

const PGBENCH: Array<[string, string[]]> = [
  ['pgbench_accounts', ['aid']],
  ['pgbench_tellers', ['tid']],
  ['pgbench_branches', ['bid']],
  // No key: replica identity full; ordered by every column.
  ['pgbench_history', ['tid', 'bid', 'aid', 'delta', 'mtime', 'filler']],
];

/** A connection once the restarted server takes one again. */
async function reconnected(cluster: PgCluster, database: string): Promise<Client> {
  const c = await waitFor(() => cluster.connect(database).catch(() => null), {
    reason: 'the restarted server to take connections',
    until: (client) => client !== null,
    timeout: 30_000,
  });
  return c!;
}

async function digests(c: Client, tables: Array<[string, string[]]>) {
  const out: Record<string, { count: number; md5: string }> = {};
  for (const [table, key] of tables) out[table] = await tableDigest(c, 'public', table, key);
  return out;
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

  /** Writes the spec of an incremental task on database `name` of both clusters; returns its path. */
  function taskSpec(name: string, options: Record<string, unknown>): string {
    const file = join(dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        options,
      }),
    );
    return file;
  }

  /** Creates database `name` on both clusters and connects to each. */
  async function taskDatabases(name: string): Promise<{ s: Client; d: Client }> {
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    return { s: await source.connect(name), d: await destination.connect(name) };
  }

  /**
   * Once the stream has applied 500 more changes, kills a child process of the task with
   * SIGKILL and waits until its supervisor has started it again.
   */
  async function killWhileStreaming(
    d: Client,
    name: string,
    workDir: string,
    out: { text(): string },
    child: 'capture' | 'applier',
  ): Promise<void> {
    const before = (await readTaskStatus(d, name))!.stream!.appliedRecords;
    await waitFor(async () => (await readTaskStatus(d, name))!.stream!.appliedRecords, {
      reason: `changes to be applied before killing the ${child}`,
      until: (n) => n > before + 500,
      timeout: 60_000,
    });
    const pid = readPidFile(join(workDir, `${child}.pid`));
    expect(pid).not.toBeNull();
    process.kill(pid!, 'SIGKILL');
    await waitFor(() => out.text(), {
      reason: `the ${child} to be restarted`,
      until: (t) => t.includes(`${child.padEnd(12)} pid ${pid} was killed by SIGKILL; restart 1`),
      timeout: 30_000,
    });
  }

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
    expect(await columns(d)).toEqual(['id', 'Note Ü', 'doc', 'qty', 'extra']);
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
    const api = await startTaskApi(resolveEndpoint({ url: destination.url(name) }, 'destination'), 0);
    try {
      const status = (await (await fetch(`${api.url}/tasks/${name}`)).json()) as TaskStatus;
      expect(status.phase).toBe('incremental');
      expect(status.stream).toEqual(
        expect.objectContaining({
          appliedLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
          notDelayed: expect.any(Boolean),
        }),
      );
      const asked = await fetch(`${api.url}/tasks/${name}/cutover`, { method: 'POST' });
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
    // The transaction topic, read back from the broker's files: BEGIN and END around each source
    // transaction, END with its per-table counts.
    const broker = await startEmbeddedKafka({ dataDir: join(dir, name, 'kafka'), port: 0, registryPort: 0 });
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
      await broker.close();
    }
    // Cutover carried the sequence past the source's last value.
    expect((await d.query(`SELECT last_value::int AS v FROM "Counter Ü_seq_seq"`)).rows[0].v).toBe(101);
    expect((await d.query(`SELECT last_value::int AS v FROM "Neu Ü_seq_seq"`)).rows[0].v).toBe(23);
    expect(await runRelease({ source: source.url(name), name }, captureOutput().out)).toBe(0);
    await s.end();
    await d.end();
  }, 180_000);

  it('consistency transactional: a reader of the destination never sees part of a source transaction, through SIGKILLs and a 100k-row transaction', async () => {
    const name = 'whole';
    const { s, d } = await taskDatabases(name);
    await loadPgbenchLike(s, { scale: 1, schema: 'public' });
    const workDir = join(dir, name);
    const spec = taskSpec(name, { consistency: 'transactional', retry: { otherMinutes: 5 } });
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir, out: out.out });
    migration.catch(() => undefined);
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (v) => v === 'running', timeout: 120_000 },
    );
    // Every pgbench TPC-B transaction adds the same delta to an account, a teller, a branch and
    // a history row, each in its own topic: the four sums are equal after every source commit.
    // The reader checks that on the destination, in one snapshot, as often as it can.
    const seen = { reads: 0, totals: new Set<string>(), broken: [] as string[] };
    let reading = true;
    const reader = (async () => {
      const r = await destination.connect(name);
      try {
        while (reading) {
          const { rows } = await r.query(`SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint AS a,
                 (SELECT sum(tbalance) FROM pgbench_tellers)::bigint AS t,
                 (SELECT sum(bbalance) FROM pgbench_branches)::bigint AS b,
                 (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint AS h`);
          const { a, t, b, h } = rows[0];
          seen.reads++;
          seen.totals.add(a);
          if (!(a === t && t === b && b === h)) seen.broken.push(JSON.stringify(rows[0]));
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await r.end();
      }
    })();
    const bench = runPgbench(
      { host: source.host, port: source.port, user: source.user, password: source.password },
      { database: name, clients: 4, seconds: 20 },
    );
    for (const child of ['capture', 'applier'] as const)
      await killWhileStreaming(d, name, workDir, out, child);
    const load = await bench;
    expect(load.transactions).toBeGreaterThan(1000);
    // One source transaction far larger than what the applier applies at a time.
    await s.query(`BEGIN;
      UPDATE pgbench_accounts SET abalance = abalance + 1;
      UPDATE pgbench_tellers SET tbalance = tbalance + 10000;
      UPDATE pgbench_branches SET bbalance = bbalance + 100000;
      INSERT INTO pgbench_history VALUES (1, 1, 1, 100000, now(), '');
      COMMIT`);
    // A schema change between transactions, then a transaction that uses the new column.
    await s.query(`ALTER TABLE pgbench_tellers ADD COLUMN "Note" text DEFAULT 'none'`);
    await s.query(`BEGIN;
      UPDATE pgbench_tellers SET tbalance = tbalance + 7, "Note" = 'after' WHERE tid = 1;
      UPDATE pgbench_branches SET bbalance = bbalance + 7 WHERE bid = 1;
      UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 1;
      INSERT INTO pgbench_history VALUES (1, 1, 1, 7, now(), '');
      COMMIT`);
    const cut = captureOutput();
    const code = await runCutover({ spec, timeout: 120 }, cut.out);
    expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
    const done = await migration;
    reading = false;
    await reader;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(seen.broken).toEqual([]);
    // The reader watched the stream move, not one state.
    expect(seen.totals.size).toBeGreaterThan(5);
    const want = await digests(s, PGBENCH);
    expect(want.pgbench_history.count).toBe(load.transactions + 2);
    expect(await d.query(`SELECT "Note" FROM pgbench_tellers WHERE tid = 1`)).toMatchObject({
      rows: [{ Note: 'after' }],
    });
    expect(await digests(d, PGBENCH)).toEqual(want);
    expect(await runRelease({ spec }, captureOutput().out)).toBe(0);
    await s.end();
    await d.end();
  }, 300_000);

  it('consistency transactional: a schema change after row changes in the same source transaction stops the task quoting it; per-key then carries it; a table created mid-stream is streamed and follows its rename, one without a key gets a warning', async () => {
    const name = 'mixedddl';
    const { s, d } = await taskDatabases(name);
    await s.query(`CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL);
                   INSERT INTO items SELECT g, 0 FROM generate_series(1, 50) g`);
    const spec = taskSpec(name, { consistency: 'transactional' });
    const run = () => {
      const out = captureOutput();
      const migration = runMigrate({ spec, workDir: join(dir, name), inProcess: true, out: out.out });
      migration.catch(() => undefined);
      return { out, migration };
    };
    const first = run();
    await waitFor(async () => (await readTaskStatus(d, name))?.stream?.appliedLsn ?? null, {
      reason: 'the stream to apply a first mark',
      until: (lsn) => lsn !== null,
      timeout: 60_000,
    });
    await s.query(`UPDATE items SET n = 1 WHERE id <= 10`);
    // A table created mid-stream is streamed, whole transactions too: the applier follows it.
    await s.query(
      `BEGIN; CREATE TABLE "Later" (id int PRIMARY KEY); INSERT INTO "Later" VALUES (1), (2); COMMIT`,
    );
    await s.query(`BEGIN; INSERT INTO "Later" VALUES (3); UPDATE items SET n = 3 WHERE id = 3; COMMIT`);
    await waitFor(
      async () =>
        (await d.query(`SELECT count(*)::int AS n FROM "Later"`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]
          .n,
      { reason: "the new table's rows on the destination", until: (n) => n === 3, timeout: 60_000 },
    );
    expect(first.out.text()).toMatch(/stream +gained "public"\."Later" \(created or renamed on the source\)/);
    await s.query(
      `BEGIN; UPDATE items SET n = 2 WHERE id = 1; ALTER TABLE items ADD COLUMN note text; COMMIT`,
    );
    await expect(first.migration).rejects.toThrow(
      /schema change .*ALTER TABLE items ADD COLUMN note text.* follows row changes in the same source transaction \(xid \d+\); with options.consistency transactional .*Set options.consistency to per-key and run migrate again/,
    );
    // The transaction before it is on the destination, nothing of the mixed one.
    expect((await d.query(`SELECT count(*)::int AS n FROM items WHERE n = 1`)).rows[0].n).toBe(9);
    // As the message says: per-key carries it, from where the transactional applier stopped.
    taskSpec(name, { consistency: 'per-key' });
    const second = run();
    await waitFor(
      async () =>
        (
          await d.query(
            `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'`,
          )
        ).rows[0].n,
      { reason: 'the schema change on the destination', until: (n) => n === 1, timeout: 60_000 },
    );
    await s.query(`UPDATE items SET note = 'after' WHERE id = 2`);
    await s.query(`INSERT INTO "Later" VALUES (4); DELETE FROM "Later" WHERE id = 1`);
    // Renamed: the statement runs on the destination and the rows follow under the new name.
    await s.query(`ALTER TABLE "Later" RENAME TO "Renamed"`);
    await s.query(`INSERT INTO "Renamed" VALUES (5); UPDATE "Renamed" SET id = 6 WHERE id = 2`);
    // A table without a key cannot be streamed (the source would refuse its UPDATEs once
    // published): it is created on the destination, and the user is told, with what to do.
    await s.query(`CREATE TABLE loose (v int); INSERT INTO loose VALUES (1)`);
    await waitFor(() => second.out.text(), {
      reason: 'the warning about the new table',
      until: (t) =>
        /WARNING +"public"\."loose" was created on the source after task mixedddl started: .*rows are not streamed \("public"\."loose" had no primary key when it was created.*conflictMode: ignore/.test(
          t,
        ),
      timeout: 60_000,
    });
    expect((await d.query(`SELECT to_regclass('public.loose') IS NOT NULL AS made`)).rows[0].made).toBe(true);
    // The source still takes updates of it.
    await s.query(`UPDATE loose SET v = 2`);
    await requestCutover(d, name);
    const done = await second.migration;
    expect({ code: done.code, out: done.code ? second.out.text() : '' }).toEqual({ code: 0, out: '' });
    const table: Array<[string, string[]]> = [
      ['items', ['id']],
      ['Renamed', ['id']],
    ];
    expect(await digests(d, table)).toEqual(await digests(s, table));
    expect(second.out.text()).toMatch(
      /stream +gained "public"\."Renamed" \(created or renamed on the source\)/,
    );
    expect(second.out.text()).toMatch(
      /cutover +done: .*not compared, no longer on the source: "public"\."Later"/,
    );
    expect(await runRelease({ spec }, captureOutput().out)).toBe(0);
    await s.end();
    await d.end();
  }, 180_000);
});
