import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import {
  brokerForTasks,
  captureOutput,
  startPostgres,
  startTestBroker,
  tableDigest,
  waitFor,
  type PgCluster,
  type TestBroker,
} from '@pgferry/testing';
import { readGroupOffsets, requestCutover } from '@pgferry/control';
import { runMigrate } from './migrate-command';
import { runRelease } from './release-command';
import { readTaskStatus } from './api/task-status';

/**
 * A task's runs on Kafka (issue 18): a task started afresh into a recreated destination is a new
 * run that never applies an older run's records; a run resumed against another Kafka stops with
 * one line; a gap in a topic stops the applier naming it. On both brokers: on the embedded one
 * migrate starts its own per run, on real Kafka the topics outlive the runs.
 */
describe('pgferry migrate: runs', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-runs-'));
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

  const ITEMS = `CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL, n int NOT NULL);
                 INSERT INTO items SELECT g, 'row ' || g, 0 FROM generate_series(1, 300) g`;

  async function databases(name: string): Promise<{ s: Client; d: Client }> {
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    return { s: await source.connect(name), d: await destination.connect(name) };
  }

  /** Drops the destination database and creates it again, empty. */
  async function recreateDestination(name: string): Promise<Client> {
    await destination.query(`DROP DATABASE "${name}" WITH (FORCE)`);
    await destination.createDatabase(name);
    return destination.connect(name);
  }

  const digest = (c: Client) => tableDigest(c, 'public', 'items', ['id']);

  /** Writes the spec of an incremental task on database `name` of both clusters; returns its path. */
  function specFile(
    name: string,
    options: Record<string, unknown>,
    extra: Record<string, unknown> = {},
    file = join(dir, `${name}.json`),
  ) {
    writeFileSync(
      file,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        options,
        ...extra,
      }),
    );
    return file;
  }

  /** Runs an incremental migrate until its stream applies, changes the source, cuts over. */
  async function incrementalRun(
    name: string,
    spec: string,
    workDir: string,
    s: Client,
    d: Client,
    change: string,
    inProcess: boolean,
    resetTopics = false,
  ): Promise<string> {
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir, inProcess, resetTopics, out: out.out });
    migration.catch(() => undefined);
    await waitFor(async () => (await readTaskStatus(d, name).catch(() => null))?.stream?.appliedLsn ?? null, {
      reason: 'the stream to apply a first mark',
      until: (lsn) => lsn !== null,
      timeout: 120_000,
    });
    await s.query(change);
    await requestCutover(d, name);
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(await runRelease({ spec, workDir }, captureOutput().out)).toBe(0);
    return done.result!.runId;
  }

  it("full-only: the same --name into a recreated destination is a new run, and never applies the first run's rows (the defect: a duplicated key when building the primary key)", async () => {
    const name = 'again';
    const { s } = await databases(name);
    await s.query(ITEMS);
    const workDir = join(dir, name);
    const migrate = async (resetTopics = false) => {
      const out = captureOutput();
      const done = await runMigrate({
        source: source.url(name),
        target: destination.url(name),
        name,
        workDir,
        resetTopics,
        out: out.out,
      });
      expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
      return done.result!.runId;
    };
    const first = await migrate();
    // Rows the second run must not see again: deleted and changed on the source since.
    await s.query(`DELETE FROM items WHERE id > 250; UPDATE items SET n = 2 WHERE id <= 10`);
    const d = await recreateDestination(name);
    // On real Kafka the first run's topics outlive it: the new run refuses them unless reset.
    const second = await migrate(true);
    expect(second).not.toBe(first);
    expect(await digest(d)).toEqual(await digest(s));
    expect((await digest(d)).count).toBe(250);
    // The embedded broker's data is the run's own (real Kafka: none); release removes every run's.
    const kafkaDir = join(workDir, 'kafka');
    const runDirs = existsSync(kafkaDir) ? readdirSync(kafkaDir).sort() : [];
    expect(runDirs).toEqual(tasks.broker ? [] : [`run-${first}`, `run-${second}`].sort());
    const out = captureOutput();
    expect(await runRelease({ source: source.url(name), name, workDir }, out.out)).toBe(0);
    expect(out.text().includes(`removed  embedded broker data ${kafkaDir}`)).toBe(!tasks.broker);
    expect(existsSync(kafkaDir)).toBe(false);
    await Promise.all([s.end(), d.end()]);
  }, 240_000);

  it.each([
    ['per-key', 'againpk', true],
    ['transactional', 'againtx', false],
  ] as const)(
    'incremental (%s): the same task into a recreated destination gives tables equal to the source',
    async (consistency, name, inProcess) => {
      const { s, d } = await databases(name);
      await s.query(ITEMS);
      const workDir = join(dir, name);
      const spec = specFile(name, { consistency });
      const first = await incrementalRun(
        name,
        spec,
        workDir,
        s,
        d,
        `DELETE FROM items WHERE id > 280; UPDATE items SET n = n + 1 WHERE id <= 20`,
        inProcess,
      );
      expect(await digest(d)).toEqual(await digest(s));
      await s.query(`DELETE FROM items WHERE id > 250; INSERT INTO items VALUES (1000, 'new', 1)`);
      await d.end();
      const fresh = await recreateDestination(name);
      const second = await incrementalRun(
        name,
        spec,
        workDir,
        s,
        fresh,
        `DELETE FROM items WHERE id <= 5; UPDATE items SET n = n + 10 WHERE id <= 30`,
        inProcess,
        true,
      );
      expect(second).not.toBe(first);
      expect(await digest(fresh)).toEqual(await digest(s));
      await Promise.all([s.end(), fresh.end()]);
    },
    300_000,
  );

  it('resumed from another working directory: stops with one line on the embedded broker (it holds none of the run), resumes on the same Kafka; no change is lost', async () => {
    const name = 'elsewhere';
    const { s, d } = await databases(name);
    await s.query(ITEMS);
    const spec = specFile(name, {});
    const here = join(dir, name);
    const stop = new AbortController();
    const out = captureOutput();
    const first = runMigrate({ spec, workDir: here, inProcess: true, signal: stop.signal, out: out.out });
    first.catch(() => undefined);
    await waitFor(async () => (await readTaskStatus(d, name).catch(() => null))?.stream?.appliedLsn ?? null, {
      reason: 'the stream to apply a first mark',
      until: (lsn) => lsn !== null,
      timeout: 120_000,
    });
    await s.query(`UPDATE items SET n = 1 WHERE id <= 100`);
    stop.abort();
    expect((await first).code).toBe(130);
    // Changes made while the task is stopped are in the slot, for whichever run resumes it.
    await s.query(`DELETE FROM items WHERE id > 290; UPDATE items SET n = 2 WHERE id <= 50`);
    const elsewhere = join(dir, `${name}-elsewhere`);
    // The embedded broker started there holds none of the run: one line, nothing done.
    const refused = tasks.broker
      ? 'real Kafka: the same cluster, resumed below'
      : await runMigrate({ spec, workDir: elsewhere, inProcess: true, out: captureOutput().out }).then(
          () => 'resumed',
          (err: Error) => err.message,
        );
    expect(refused).toMatch(
      tasks.broker
        ? /^real Kafka/
        : /^task elsewhere \(run [0-9a-f]{16}\) keeps its records in Kafka cluster \S+; this Kafka is cluster \S+, which does not hold them: point the task at that Kafka \(with the embedded broker, run from the working directory that holds its data/,
    );
    // On real Kafka the other directory reaches the same cluster and resumes; on the embedded
    // broker the task resumes from its own directory.
    const resumed = await incrementalRun(
      name,
      spec,
      tasks.broker ? elsewhere : here,
      s,
      d,
      `UPDATE items SET n = 3 WHERE id > 280`,
      true,
    );
    expect(resumed).toMatch(/^[0-9a-f]{16}$/);
    expect(await digest(d)).toEqual(await digest(s));
    await Promise.all([s.end(), d.end()]);
  }, 300_000);

  describe('a retention gap in a table topic while the applier is stopped', () => {
    let broker: TestBroker;
    let own = false;
    beforeAll(async () => {
      // Appliers run elsewhere meanwhile (options.stream.appliers 0): that needs a Kafka migrate
      // does not start itself.
      own = !tasks.broker;
      broker = tasks.broker ?? (await startTestBroker());
    });
    afterAll(async () => {
      if (own) await broker?.close();
    });

    it.each([
      ['per-key', 'gappk'],
      ['transactional', 'gaptx'],
    ] as const)(
      '%s: the task stops naming the topic, the partition, the offset needed and the log start',
      async (consistency, name) => {
        const { s, d } = await databases(name);
        await s.query(ITEMS);
        const kafkaSpec = { kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl } };
        const spec = specFile(name, { consistency }, kafkaSpec);
        const noAppliers = specFile(
          name,
          { consistency, stream: { appliers: 0 } },
          kafkaSpec,
          join(dir, `${name}-capture-only.json`),
        );
        const run = (file: string, signal?: AbortSignal) => {
          const out = captureOutput();
          const m = runMigrate({
            spec: file,
            workDir: join(dir, name),
            inProcess: true,
            signal,
            out: out.out,
          });
          m.catch(() => undefined);
          return m;
        };
        const stop = new AbortController();
        const first = run(spec, stop.signal);
        await waitFor(
          async () => (await readTaskStatus(d, name).catch(() => null))?.stream?.appliedLsn ?? null,
          { reason: 'the stream to apply a first mark', until: (lsn) => lsn !== null, timeout: 120_000 },
        );
        stop.abort();
        expect((await first).code).toBe(130);
        // The capture alone: the changes reach Kafka, and no applier takes them.
        const captureOnly = new AbortController();
        const second = run(noAppliers, captureOnly.signal);
        await s.query(`UPDATE items SET n = n + 1`);
        const topic = `pgferry.${name}.public.items`;
        const kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
        const admin = kafka.admin();
        await admin.connect();
        try {
          const behind = await waitFor(
            async () => {
              const applied = new Map(
                (await readGroupOffsets(d, `pgferry-${name}-applier`)).map((o) => [
                  `${o.topic}:${o.partition}`,
                  o.nextOffset,
                ]),
              );
              const ends = await admin.fetchTopicOffsets(topic);
              const sent = ends.reduce(
                (n, e) => n + Number(e.high) - Number(applied.get(`${topic}:${e.partition}`)),
                0,
              );
              return { sent, ends, applied };
            },
            {
              reason: 'the capture to publish the 300 updates',
              until: (v) => v.sent >= 300,
              timeout: 60_000,
            },
          );
          captureOnly.abort();
          expect((await second).code).toBe(130);
          const p = behind.ends.find((e) => BigInt(e.high) > behind.applied.get(`${topic}:${e.partition}`)!)!;
          const needed = behind.applied.get(`${topic}:${p.partition}`)!;
          // Retention took the partition's records before the applier read them.
          await admin.fetchTopicMetadata({ topics: [topic] });
          await admin.deleteTopicRecords({ topic, partitions: [{ partition: p.partition, offset: p.high }] });
          await expect(run(spec)).rejects.toThrow(
            `Kafka topic ${topic} partition ${p.partition}: the next record needed is at offset ${needed}, but the log starts at offset ${p.high}`,
          );
          // Nothing after the gap was applied either.
          expect(
            (await readGroupOffsets(d, `pgferry-${name}-applier`)).find(
              (o) => o.topic === topic && o.partition === p.partition,
            )!.nextOffset,
          ).toBe(needed);
        } finally {
          await admin.disconnect();
        }
        expect(await runRelease({ spec }, captureOutput().out)).toBe(0);
        await Promise.all([s.end(), d.end()]);
      },
      300_000,
    );
  });
});
