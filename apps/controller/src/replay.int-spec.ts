import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  brokerForTasks,
  captureOutput,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
} from '@pgferry/testing';
import { applierGroup, readGroupOffsets, requestCutover } from '@pgferry/control';
import { replayTaskName } from '@pgferry/task';
import { ConfigResourceTypes, Kafka, logLevel } from 'kafkajs';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { embeddedDataDir, runMigrate } from './migrate-command';
import { runReplayCommand, type ReplayCommandOptions } from './replay-command';
import { readTaskStatus } from './api/task-status';

/**
 * pgferry replay (issue 18): a destination rebuilt from a task's topics alone, at the cutover
 * and at a mid-stream LSN, compared with the source's state at those moments; replay --verify
 * naming a changed value and a missing row; a replay killed with SIGKILL resumes to equal. On
 * the task's embedded broker data and on real Kafka.
 */
describe('pgferry replay', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-replay-'));
  const name = 'shop';
  const workDir = join(dir, name);
  let tasks: Awaited<ReturnType<typeof brokerForTasks>>;
  let s: Client;
  let d: Client;
  /** The source's tables at the cutover, and at `midLsn` (writes paused while they were taken). */
  let atCutover: Digests;
  let atMid: Digests;
  let midLsn: string;
  let midTime: string;
  /** How the migration ended, and the destination's tables after it (checked in the first test). */
  let migrated: { code: number; out: string };
  let atDestination: Digests;
  let runId: string;

  type Digests = Record<string, { count: number; md5: string }>;
  const TABLES: Array<[string, string[]]> = [
    ['items', ['id']],
    ['orders', ['region', 'id']],
    ['blobs', ['id']],
  ];
  async function digests(c: Client): Promise<Digests> {
    const out: Digests = {};
    for (const [table, key] of TABLES) out[table] = await tableDigest(c, 'public', table, key);
    return out;
  }
  const replay = (o: Partial<Omit<ReplayCommandOptions, 'out'>>, out = captureOutput()) =>
    runReplayCommand({
      from: name,
      workDir,
      kafka: process.env.KAFKA_BROKERS,
      schemaRegistry: process.env.SCHEMA_REGISTRY_URL,
      out: out.out,
      ...o,
    });
  async function emptyDatabase(db: string): Promise<Client> {
    await destination.createDatabase(db);
    return destination.connect(db);
  }

  beforeAll(async () => {
    tasks = await brokerForTasks();
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    [s, d] = await Promise.all([source.connect(name), destination.connect(name)]);
    // blobs: 40 000 rows of 480 random bytes (incompressible), more than one fetch round of the
    // applier, so that a throttled replay can be killed between two of its transactions.
    await s.query(`
      CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL, n int NOT NULL);
      INSERT INTO items SELECT g, 'row ' || g, 0 FROM generate_series(1, 2000) g;
      CREATE TABLE orders (region text, id int, amount numeric(10,2) NOT NULL, PRIMARY KEY (region, id));
      INSERT INTO orders SELECT r, g, g * 1.25 FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 250) g;
      CREATE TABLE blobs (id int PRIMARY KEY, b bytea NOT NULL);
      INSERT INTO blobs SELECT g, (SELECT string_agg(decode(md5(random()::text || g || x), 'hex'), ''::bytea)
                                     FROM generate_series(1, 30) x) FROM generate_series(1, 40000) g`);
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
      }),
    );
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir, inProcess: true, out: out.out });
    migration.catch(() => undefined);
    await waitFor(async () => (await readTaskStatus(d, name).catch(() => null))?.stream?.appliedLsn ?? null, {
      reason: 'the stream to apply a first mark',
      until: (lsn) => lsn !== null,
      timeout: 120_000,
    });
    // Changes through the stream, then a point with writes paused: its LSN and the tables then.
    await s.query(`UPDATE items SET n = n + 1 WHERE id % 7 = 0`);
    await s.query(`DELETE FROM items WHERE id BETWEEN 100 AND 120`);
    await s.query(`INSERT INTO orders SELECT 'asia', g, g FROM generate_series(1, 40) g`);
    await s.query(
      `BEGIN; UPDATE orders SET amount = amount + 1 WHERE region = 'eu'; DELETE FROM blobs WHERE id <= 10; COMMIT`,
    );
    // The insert position: the test clusters commit asynchronously, so the write position can
    // still be short of the last commit.
    midLsn = (await s.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0].lsn;
    atMid = await digests(s);
    midTime = (await s.query(`SELECT clock_timestamp() AS t`)).rows[0].t.toISOString();
    // Commit times travel in milliseconds (ts_ms): the next commit must fall in a later one.
    await waitFor(
      async () =>
        (await s.query(`SELECT clock_timestamp() > $1::timestamptz + interval '1 ms' AS past`, [midTime]))
          .rows[0].past,
      { reason: "the source's clock to pass the mid point's millisecond", timeout: 5_000, interval: 1 },
    );
    // More changes after it: a key moved, rows deleted and inserted, values changed.
    await s.query(`UPDATE items SET id = id + 100000 WHERE id = 5`);
    await s.query(`DELETE FROM orders WHERE region = 'us' AND id > 200`);
    await s.query(`UPDATE items SET note = 'late ' || id WHERE id BETWEEN 1000 AND 1100`);
    await s.query(`INSERT INTO items SELECT g, 'new ' || g, 9 FROM generate_series(3001, 3100) g`);
    await requestCutover(d, name);
    const done = await migration;
    migrated = { code: done.code, out: done.code ? out.text() : '' };
    runId = done.result?.runId ?? '';
    atCutover = await digests(s);
    atDestination = await digests(d);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([s?.end(), d?.end()].map((p) => p?.catch(() => undefined)));
    await tasks?.stop();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('replays into an empty database: every table equal to the source at the cutover, with its keys', async () => {
    expect(migrated).toEqual({ code: 0, out: '' });
    expect(atDestination).toEqual(atCutover);
    const r = await emptyDatabase('replay_full');
    const out = captureOutput();
    expect(await replay({ target: destination.url('replay_full') }, out)).toBe(0);
    expect(out.text()).toMatch(/done {9}3 tables, \d+ records replayed\n/);
    expect(await digests(r)).toEqual(atCutover);
    const { rows } = await r.query(
      `SELECT conrelid::regclass::text AS t FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace ORDER BY 1`,
    );
    expect(rows.map((x) => x.t)).toEqual(['blobs', 'items', 'orders']);
    // Run again: everything is applied already, nothing changes.
    const again = captureOutput();
    expect(await replay({ target: destination.url('replay_full') }, again)).toBe(0);
    expect(again.text()).toContain('(resumed)');
    expect(await digests(r)).toEqual(atCutover);
    await r.end();
  }, 120_000);

  it('replays up to a mid-stream LSN: the tables as the source had them at that LSN', async () => {
    const r = await emptyDatabase('replay_mid');
    const out = captureOutput();
    expect(await replay({ target: destination.url('replay_mid'), untilLsn: midLsn }, out)).toBe(0);
    expect(out.text()).toContain(`up to LSN ${midLsn}`);
    expect(atMid).not.toEqual(atCutover);
    expect(await digests(r)).toEqual(atMid);
    // The same point by commit time (the transaction records' END times).
    const t = await emptyDatabase('replay_time');
    const byTime = captureOutput();
    expect(await replay({ target: destination.url('replay_time'), untilTime: midTime }, byTime)).toBe(0);
    expect(await digests(t)).toEqual(atMid);
    await Promise.all([r.end(), t.end()]);
  }, 120_000);

  it('replay --verify: an equal database passes; a changed value and a missing row are named by key and column', async () => {
    const equal = captureOutput();
    expect(await replay({ verify: destination.url(name) }, equal)).toBe(0);
    const items = atCutover.items.count;
    const orders = atCutover.orders.count;
    expect(equal.text()).toContain(
      `equal     "public"."items": ${items} rows in the topics, ${items} in the database`,
    );
    await d.query(`UPDATE items SET note = 'tampered' WHERE id = 7`);
    await d.query(`DELETE FROM orders WHERE region = 'eu' AND id = 3`);
    const out = captureOutput();
    expect(await replay({ verify: destination.url(name) }, out)).toBe(1);
    const text = out.text();
    expect(text).toContain(
      `DIFFERENT "public"."items": ${items} rows in the topics, ${items} in the database`,
    );
    expect(text).toContain(
      `row ("id")=(7): column "note" is "row 7" in the topics, "tampered" in the database`,
    );
    expect(text).toContain(
      `DIFFERENT "public"."orders": ${orders} rows in the topics, ${orders - 1} in the database`,
    );
    expect(text).toContain('row ("region", "id")=(eu, 3): missing in the database');
    expect(text).toContain('equal     "public"."blobs"');
    // The scratch database is gone, the compared one untouched.
    const { rows } = await d.query(`SELECT datname FROM pg_database WHERE datname LIKE 'pgferry_replay_%'`);
    expect(rows).toEqual([]);
    expect((await d.query(`SELECT note FROM items WHERE id = 7`)).rows).toEqual([{ note: 'tampered' }]);
  }, 180_000);

  it('a replay killed with SIGKILL between two transactions resumes to equal', async () => {
    const r = await emptyDatabase('replay_kill');
    const group = applierGroup(replayTaskName(name));
    const child = spawn(
      process.execPath,
      [
        join(__dirname, '..', 'dist', 'main.js'),
        'replay',
        '--from',
        name,
        '--target',
        destination.url('replay_kill'),
        '--work-dir',
        workDir,
        // The first fetch round goes in at once; the throttle then holds the next for seconds.
        '--max-rows-per-second',
        '2000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: process.env },
    );
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    child.stderr.on('data', (b) => (output += b));
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve((exitCode = code))),
    );
    // The replay's stored offsets of the blobs topic, summed (its start offsets are 0: a new topic).
    const blobsApplied = async () => {
      const has = (await r.query(`SELECT to_regclass('pgferry.offsets') IS NOT NULL AS has`)).rows[0].has;
      if (!has) return 0n;
      const offsets = await readGroupOffsets(r, group);
      return offsets.filter((o) => o.topic.endsWith('.blobs')).reduce((n, o) => n + o.nextOffset, 0n);
    };
    await waitFor(async () => (exitCode !== undefined ? -1n : blobsApplied()), {
      reason: 'the throttled replay to commit its first transaction',
      until: (n) => n !== 0n,
      timeout: 120_000,
      interval: 20,
    });
    expect({ exitCode, output }).toEqual({ exitCode: undefined, output: expect.any(String) });
    child.kill('SIGKILL');
    expect(await exited).toBe(null);
    // Killed midway: some of the rows are in, not all.
    const partial = (await tableDigest(r, 'public', 'blobs', ['id'])).count;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(atCutover.blobs.count);
    const out = captureOutput();
    expect(await replay({ target: destination.url('replay_kill') }, out)).toBe(0);
    expect(out.text()).toContain('(resumed)');
    expect(await digests(r)).toEqual(atCutover);
    await r.end();
  }, 180_000);

  it('refuses a target that is not empty, one past the point, an LSN beyond the stream and an unknown prefix, leaving data intact', async () => {
    const before = await digests(d);
    await expect(replay({ target: destination.url(name) })).rejects.toThrow(
      /is not empty: it holds public\.blobs, public\.items, public\.orders; replay rebuilds task shop's tables from nothing/,
    );
    expect(await digests(d)).toEqual(before);
    // A replay already past the point cannot go back to it.
    await expect(replay({ target: destination.url('replay_full'), untilLsn: midLsn })).rejects.toThrow(
      /this database holds task shop's records past the point: Kafka topic pgferry\.shop\.public\.\w+ partition \d is applied up to offset \d+, the point ends at \d+/,
    );
    const full = await destination.connect('replay_full');
    expect(await digests(full)).toEqual(atCutover);
    await full.end();
    await emptyDatabase('replay_refused');
    await expect(
      replay({ target: destination.url('replay_refused'), untilLsn: 'FFFFFFFF/0' }),
    ).rejects.toThrow(
      /LSN FFFFFFFF\/0 is beyond the end of task shop's stream on Kafka: the last change there was committed at [0-9A-F]+\/[0-9A-F]+/,
    );
    await expect(replay({ from: 'nosuch', target: destination.url('replay_refused') })).rejects.toThrow(
      /unknown topic prefix or task nosuch: Kafka has neither nosuch\.schema nor pgferry\.nosuch\.schema.*pgferry\.shop/,
    );
    const left = await destination.query(
      `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`,
      [],
      'replay_refused',
    );
    expect(left).toEqual([{ n: 0 }]);
  }, 120_000);

  it('keeps the task record forever; stops naming the topic and offsets when retention took records replay needs, and names a deleted topic, before writing anything', async () => {
    // The embedded broker over the run's data (migrate's is closed), or the real Kafka.
    const embedded = tasks.broker
      ? null
      : await startEmbeddedKafka({ dataDir: embeddedDataDir(workDir, runId), port: 0, registryPort: 0 });
    const brokers = tasks.broker?.brokers ?? embedded!.brokers;
    const topic = `pgferry.${name}.public.items`;
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const orders = `pgferry.${name}.public.orders`;
    try {
      // The task record is kept for as long as the table topics may be replayed.
      const described = await admin.describeConfigs({
        resources: [
          { type: ConfigResourceTypes.TOPIC, name: `pgferry.${name}.schema`, configNames: ['retention.ms'] },
        ],
        includeSynonyms: false,
      });
      expect(described.resources[0].configEntries.map((c) => [c.configName, c.configValue])).toEqual([
        ['retention.ms', '-1'],
      ]);
      await admin.fetchTopicMetadata({ topics: [topic] });
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '1' }] });
    } finally {
      await admin.disconnect();
      await embedded?.close();
    }
    await emptyDatabase('replay_gap');
    await expect(replay({ target: destination.url('replay_gap') })).rejects.toThrow(
      `Kafka topic ${topic} partition 0: run ${runId} of task ${name} begins at offset 0, but the log now starts at offset 1`,
    );
    const left = await destination.query(
      `SELECT count(*)::int AS n FROM pg_namespace WHERE nspname IN ('public', 'pgferry') AND EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = pg_namespace.oid)`,
      [],
      'replay_gap',
    );
    expect(left).toEqual([{ n: 0 }]);
    // A table topic deleted: named, nothing written.
    const again = tasks.broker
      ? null
      : await startEmbeddedKafka({ dataDir: embeddedDataDir(workDir, runId), port: 0, registryPort: 0 });
    const admin2 = new Kafka({
      brokers: tasks.broker?.brokers ?? again!.brokers,
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin2.connect();
    try {
      await admin2.deleteTopics({ topics: [orders] });
      await waitFor(async () => !(await admin2.listTopics()).includes(orders), {
        reason: `Kafka to forget topic ${orders}`,
        timeout: 30_000,
      });
    } finally {
      await admin2.disconnect();
      await again?.close();
    }
    await expect(replay({ target: destination.url('replay_gap') })).rejects.toThrow(
      `Kafka has no topic ${orders} of task ${name} (run ${runId}): it was deleted, or this is not the Kafka the task wrote to`,
    );
    expect(await destination.query(`SELECT to_regclass('pgferry.tasks') AS t`, [], 'replay_gap')).toEqual([
      { t: null },
    ]);
  }, 120_000);
});
