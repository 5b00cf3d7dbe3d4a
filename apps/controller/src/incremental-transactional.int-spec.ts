import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  captureOutput,
  loadPgbenchLike,
  runPgbench,
  startPostgres,
  waitFor,
  type PgCluster,
  brokerForTasks,
} from '@pgferry/testing';
import { requestCutover } from '@pgferry/control';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { readTaskStatus } from './api/task-status';
import { digests, incrementalTasks, killWhileStreaming, PGBENCH } from './test/incremental-task';

describe('pgferry migrate --incremental, consistency transactional', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-incremental-tx-'));
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
    // On failure the migrate's own lines too: its "caught up to source position" says which
    // position the incremental phase took as caught up, and its restarts of a child say why.
    expect({ code, out: code ? `${cut.text()}\nmigrate:\n${out.text().slice(-6000)}` : '' }).toEqual({
      code: 0,
      out: '',
    });
    const done = await migration;
    reading = false;
    await reader;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text().includes('embedded broker')).toBe(tasks.broker === null);
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
