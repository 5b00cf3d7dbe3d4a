import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  processAlive,
  readPidFile,
  captureOutput,
  loadPgbenchLike,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
  brokerForTasks,
} from '@pgferry/testing';
import { runMigrate } from './migrate-command';

const TABLES: Array<[string, string]> = [
  ['pgbench_accounts', 'aid'],
  ['pgbench_tellers', 'tid'],
  ['pgbench_branches', 'bid'],
  ['mixed_rows', 'id'],
];

async function digests(c: Client) {
  const out: Record<string, { count: number; md5: string }> = {};
  for (const [table, key] of TABLES) out[table] = await tableDigest(c, 'public', table, [key]);
  return out;
}

describe('pgferry migrate with capture and applier as child processes', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-children-'));
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

  /** Loads the source, starts a migration, and returns it with the source's digests before it. */
  async function start(name: string) {
    await source.createDatabase(name);
    await destination.createDatabase(name);
    const s = await source.connect(name);
    await loadPgbenchLike(s, { scale: 2, schema: 'public', mixedRows: 20_000 });
    const before = await digests(s);
    const d = await destination.connect(name);
    const out = captureOutput();
    const workDir = join(dir, name);
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        options: { chunkRows: 10_000, snapshotWorkers: 2 },
      }),
    );
    const migration = runMigrate({ spec, workDir, out: out.out });
    migration.catch(() => undefined);
    const chunks = async () =>
      (
        await d
          .query(
            `SELECT count(*) FILTER (WHERE done)::int AS done, count(*) FILTER (WHERE NOT done)::int AS pending,
                    count(*) FILTER (WHERE NOT done AND attempt > 0)::int AS reading FROM pgferry.chunks`,
          )
          .catch(() => ({ rows: [{ done: 0, pending: 0, reading: 0 }] }))
      ).rows[0] as { done: number; pending: number; reading: number };
    return { s, d, out, workDir, migration, before, chunks };
  }

  it('restarts a capture killed with SIGKILL mid-copy from the same snapshot, re-sending only unfinished chunks', async () => {
    const { s, d, out, workDir, migration, before, chunks } = await start('kill_capture');
    const pidFile = join(workDir, 'capture.pid');
    /**
     * Kills the capture (not `spared`, the one killed before) while it reads a chunk, and returns
     * its pid with the chunks it left done and in progress. A kill can fall between two chunks;
     * the caller then kills the restarted capture.
     */
    const killReading = async (spared: number | null) => {
      const { pid } = await waitFor(
        async () => {
          const c = await chunks();
          const p = c.done >= 2 && c.pending >= 4 && c.reading > 0 ? readPidFile(pidFile) : null;
          return { ...c, pid: p === spared ? null : p };
        },
        {
          reason: 'the capture child to have finished some chunks but not all, and to be reading one',
          until: (v) => v.pid !== null,
          timeout: 90_000,
          interval: 20,
        },
      );
      expect(statSync(join(workDir, 'capture.json')).mode & 0o777).toBe(0o600);
      process.kill(pid!, 'SIGKILL');
      await waitFor(() => !processAlive(pid!), { reason: `capture ${pid} to die` });
      // A statement it sent just before dying still completes: once its destination session has
      // ended, and before its restart (0.5 s later, then loading its modules) connects again, the
      // chunks are as the killed capture left them.
      await waitFor(
        async () =>
          (
            await d.query(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pgferry capture'`,
            )
          ).rows[0].n,
        {
          reason: `the session of capture ${pid} on the destination to end`,
          until: (n) => n === 0,
          interval: 10,
        },
      );
      const { rows } = await d.query(`SELECT chunk_id, done FROM pgferry.chunks WHERE done OR attempt > 0`);
      return {
        pid: pid!,
        done: rows.filter((r) => r.done).map((r) => r.chunk_id as string),
        reading: rows.filter((r) => !r.done).map((r) => r.chunk_id as string),
      };
    };
    const killed = await killReading(null);
    let hit = killed;
    for (let i = 0; hit.reading.length === 0 && i < 5; i++) hit = await killReading(hit.pid);
    expect(hit.reading.length).toBeGreaterThan(0);
    // A change after the snapshot: a capture that read under a fresh snapshot would carry it.
    await s.query(`UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 97 = 0`);
    await s.query(`UPDATE mixed_rows SET name = 'changed after the snapshot' WHERE id % 89 = 0`);

    const { code } = await migration;
    expect({ code, out: code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text()).toContain(`capture      pid ${killed.pid} was killed by SIGKILL; restart 1`);
    expect(out.text().includes('embedded broker')).toBe(tasks.broker === null);
    expect(await digests(d)).toEqual(before);
    // Chunks finished before the kill were read once; only the unfinished ones were sent again.
    const attempts = (await d.query(`SELECT chunk_id, attempt, done FROM pgferry.chunks ORDER BY chunk_id`))
      .rows;
    expect(attempts.every((r) => r.done)).toBe(true);
    expect(attempts.filter((r) => killed.done.includes(r.chunk_id)).every((r) => r.attempt === 1)).toBe(true);
    // The killed capture was in the middle of a chunk; the rows it had sent of it (if any) came
    // again, into tables loaded without their key (built after the load), and none is there twice.
    expect(attempts.filter((r) => hit.reading.includes(r.chunk_id)).every((r) => r.attempt > 1)).toBe(true);
    const keys = await d.query(
      `SELECT conrelid::regclass::text AS t FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace ORDER BY 1`,
    );
    expect(keys.rows.map((r) => r.t)).toEqual([
      'mixed_rows',
      'pgbench_accounts',
      'pgbench_branches',
      'pgbench_tellers',
    ]);
    expect(processAlive(killed.pid)).toBe(false);
    expect(existsSync(join(workDir, 'capture.pid'))).toBe(false);
    expect(existsSync(join(workDir, 'capture.json'))).toBe(false);
    expect(readFileSync(join(workDir, 'capture.log'), 'utf8')).not.toContain(source.password);
    await s.end();
    await d.end();
  });

  it('restarts an applier killed with SIGKILL mid-copy; the destination ends exact, with no duplicate', async () => {
    const { s, d, out, workDir, migration, before, chunks } = await start('kill_applier');
    const pidFile = join(workDir, 'applier.pid');
    const killed = await waitFor(
      async () => {
        const [{ n }] = (
          await d
            .query(`SELECT count(*)::int AS n FROM pgferry.offsets WHERE next_offset > 0`)
            .catch(() => ({ rows: [{ n: 0 }] }))
        ).rows;
        const c = await chunks();
        return { n, ...c, pid: n > 0 && c.pending > 0 ? readPidFile(pidFile) : null };
      },
      {
        reason: 'the applier child to have applied some rows while the capture still runs',
        until: (v) => v.pid !== null,
        timeout: 90_000,
        interval: 20,
      },
    );
    process.kill(killed.pid!, 'SIGKILL');
    const { code } = await migration;
    expect({ code, out: code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text()).toContain(`applier      pid ${killed.pid} was killed by SIGKILL; restart 1`);
    // The tables were loaded without their keys, built after the load.
    for (const table of ['mixed_rows', 'pgbench_accounts'])
      expect(out.text()).toMatch(
        new RegExp(`full-data {4}built the key of "public"\\."${table}" in \\d+\\.\\ds`),
      );
    expect(await digests(d)).toEqual(before);
    expect(processAlive(killed.pid!)).toBe(false);
    expect(existsSync(pidFile)).toBe(false);
    await s.end();
    await d.end();
  });
});
