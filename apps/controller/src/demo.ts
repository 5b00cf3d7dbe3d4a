import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { Client } from 'pg';
import { PgferryError } from '@pgferry/core';
import {
  createAllTypes,
  loadPgbenchLike,
  startLocalCluster,
  startSampleWorkload,
  tableDigest,
  type LocalCluster,
  type SampleWorkload,
  type WorkloadCounts,
} from '@pgferry/pg';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { readTaskStatus } from './api/task-status';
import { DemoOutput } from './demo-output';

export interface DemoOptions {
  scale: number;
  /** Client connections writing to the source during the migration (default 4). */
  writers?: number;
  /** Transactions per second over all writers (default 200). */
  rate?: number;
  /** How long the stream runs under the writes once it is live, before the cutover (default 15). */
  streamSeconds?: number;
  out: Writable & { isTTY?: boolean };
}

export interface DemoTable {
  table: string;
  sourceRows: number;
  destinationRows: number;
  equal: boolean;
}

export interface DemoResult {
  /** 0 when every table is equal on both sides. */
  code: number;
  /** Transactions the writers committed on the source during the migration. */
  written?: WorkloadCounts;
  /** Of those, committed once the stream was live (after the snapshot and its load). */
  writtenWhileStreaming?: WorkloadCounts;
  /** From the moment the writes stopped until the cutover was done on the destination. */
  blockedSeconds?: number;
  /** The stream's lag when the writes stopped, and the most it reached while streaming. */
  lagSeconds?: { atStop: number | null; max: number | null };
  /** pgbench_history rows on the destination written while the stream was live. */
  historyWhileStreaming?: number;
  tables: DemoTable[];
}

const TASK = 'demo';
const DATABASE = 'shop';
const MIXED_ROWS = 20_000;
const TABLES: Array<[string, string, string[]]> = [
  ['public', 'pgbench_accounts', ['aid']],
  ['public', 'pgbench_branches', ['bid']],
  ['public', 'pgbench_tellers', ['tid']],
  ['public', 'pgbench_history', ['tid', 'bid', 'aid', 'delta', 'mtime', 'filler']],
  ['public', 'mixed_rows', ['id']],
  ['types', 'all_types', ['id']],
];

/**
 * The embedded default's main job, a migration without downtime: two throwaway clusters from
 * the local PostgreSQL binaries, sample data on the source (pgbench-like tables, a mixed-types
 * table, the all-types table), and writers committing pgbench's TPC-B-like transactions and
 * mixed_rows changes on it from before the migration starts. The migration is incremental,
 * through the embedded Kafka broker, as `pgferry migrate --incremental` runs it: precheck,
 * schema, snapshot, applier, post-data, then the stream, with its lag line, for
 * `streamSeconds`. Then the cutover as a user does it: the writers stop, `pgferry cutover`
 * waits for the destination to catch up, sets the sequences and compares every table. The
 * time between the two is how long writes were blocked. Last, every table is compared once
 * more here, row count and md5 of the ordered rows. Everything is removed at the end.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const output = new DemoOutput(options.out);
  const say = output.say;
  const writers = options.writers ?? 4;
  const rate = options.rate ?? 200;
  const streamSeconds = options.streamSeconds ?? 15;
  const whole = (n: number, min: number) => Number.isInteger(n) && n >= min;
  if (!whole(options.scale, 1))
    throw new PgferryError(`--scale must be a whole number of at least 1, not ${options.scale}`);
  if (!whole(writers, 1))
    throw new PgferryError(`--writers must be a whole number of at least 1, not ${writers}`);
  if (!(rate > 0))
    throw new PgferryError(`--rate must be a number of transactions per second above 0, not ${rate}`);
  if (!(streamSeconds >= 0))
    throw new PgferryError(`--stream-seconds must be a number of seconds, 0 or more, not ${streamSeconds}`);
  const clusters: LocalCluster[] = [];
  const workDir = mkdtempSync(join(tmpdir(), 'pgferry-demo-'));
  let workload: SampleWorkload | undefined;
  let migration: Promise<{ code: number }> | undefined;
  // Ctrl-C stops the writers and the migration, and still removes the clusters.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    say('starting source and destination PostgreSQL clusters...');
    const started = await Promise.allSettled([
      startLocalCluster({ logical: true }),
      startLocalCluster({ logical: true }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') clusters.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [source, destination] = clusters;
    say(`  source      127.0.0.1:${source.port}`);
    say(`  destination 127.0.0.1:${destination.port}`);
    await source.createDatabase(DATABASE);
    await destination.createDatabase(DATABASE);
    const client = await source.connect(DATABASE);
    try {
      const began = Date.now();
      await loadPgbenchLike(client, { scale: options.scale, schema: 'public', mixedRows: MIXED_ROWS });
      await createAllTypes(client, 'types', 'all_types');
      await client.query('ANALYZE');
      say(
        `loaded sample data (pgbench scale ${options.scale}, ${MIXED_ROWS} mixed rows, every built-in type) in ${seconds(Date.now() - began)}`,
      );
    } finally {
      await client.end();
    }

    workload = await startSampleWorkload({
      connect: () => source.connect(DATABASE),
      writers,
      rate,
      scale: options.scale,
      mixedRows: MIXED_ROWS,
    });
    say(
      `writers      ${writers} connections committing up to ${rate} transactions/s on the source (pgbench TPC-B-like, and inserts, updates and deletes on mixed_rows), from now until the cutover`,
    );
    migration = runMigrate({
      source: source.url(DATABASE),
      target: destination.url(DATABASE),
      name: TASK,
      incremental: true,
      workDir,
      signal: stop.signal,
      out: output.migrate,
    });
    const control = await destination.connect(DATABASE);
    try {
      const live = await untilStreaming(control, migration, workload, stop.signal);
      if (live !== 'streaming') return { code: await failedDemo(live, migration, workload, say), tables: [] };
      const atLive = workload.counts();
      const sourceClock = await source.query<{ now: string }>(
        'SELECT localtimestamp::text AS now',
        [],
        DATABASE,
      );
      const streamingSince = sourceClock[0].now;
      say(`stream       live: streaming the writes for ${streamSeconds}s before the cutover`);
      const lag = await streamFor(control, streamSeconds, migration, workload, stop.signal);
      if (lag.ended) return { code: await failedDemo(lag.ended, migration, workload, say), tables: [] };

      say('cutover      stopping the writers (the application side of the cutover), then pgferry cutover');
      const blockedFrom = performance.now();
      const written = await workload.stop();
      const writtenWhileStreaming = {
        tpcb: written.tpcb - atLive.tpcb,
        mixed: written.mixed - atLive.mixed,
      };
      if (workload.failure())
        return { code: await failedDemo('writers', migration, workload, say), tables: [] };
      // What a user runs in a second terminal; its lines are marked as that command's.
      say(`$ pgferry cutover --target <destination> --name ${TASK}`);
      const cutting = runCutover(
        { target: destination.url(DATABASE), name: TASK, timeout: 120, pollMs: 100 },
        output.command('  > '),
      );
      // A migrate that ends without cutting over (Ctrl-C, a failure) ends the wait too.
      const cut = await Promise.race([cutting, migration.then((m) => (m.code ? m.code : cutting))]);
      const blockedSeconds = (performance.now() - blockedFrom) / 1000;
      const done = await migration;
      if (cut !== 0 || done.code !== 0) return { code: cut || done.code, tables: [] };

      const tables = await compareTables(source, destination, say);
      const historyWhileStreaming = Number(
        (
          await control.query<{ n: string }>(
            'SELECT count(*) AS n FROM public.pgbench_history WHERE mtime > $1::timestamp',
            [streamingSince],
          )
        ).rows[0].n,
      );
      const different = tables.filter((t) => !t.equal).length;
      say('');
      say('summary');
      say(
        `  written    ${written.tpcb + written.mixed} transactions committed on the source during the migration by ${writers} writers (${written.tpcb} TPC-B-like, ${written.mixed} on mixed_rows), ${writtenWhileStreaming.tpcb + writtenWhileStreaming.mixed} of them while the stream was live`,
      );
      say(
        `  streamed   ${historyWhileStreaming} pgbench_history rows on the destination were written on the source after the stream went live`,
      );
      say(
        `  lag        ${lag.atStop === null ? 'unknown' : seconds(lag.atStop * 1000)} when the writes stopped, at most ${lag.max === null ? 'unknown' : seconds(lag.max * 1000)} while streaming`,
      );
      say(
        `  cutover    writes were blocked for ${blockedSeconds.toFixed(1)} s: from the moment the writes stopped until the destination had caught up, its sequences were set and every table compared`,
      );
      say(
        different
          ? `  tables     ${different} of ${tables.length} differ`
          : `  tables     all ${tables.length} equal`,
      );
      return {
        code: different ? 1 : 0,
        written,
        writtenWhileStreaming,
        blockedSeconds,
        lagSeconds: { atStop: lag.atStop, max: lag.max },
        historyWhileStreaming,
        tables,
      };
    } finally {
      await control.end().catch(() => undefined);
    }
  } finally {
    // Writers, then the migration, then the clusters under them.
    await workload?.stop();
    if (migration) {
      stop.abort();
      await migration.catch(() => undefined);
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all(clusters.map((c) => c.stop()));
    rmSync(workDir, { recursive: true, force: true });
    say('clusters stopped and removed');
  }
}

/** Why the demo did not get as far as streaming: the migration ended, the writers failed, or Ctrl-C. */
type Interrupted = 'migration' | 'writers' | 'stopped';

/** Polls the task's status until its incremental phase is running and has applied a first mark. */
async function untilStreaming(
  control: Client,
  migration: Promise<unknown>,
  workload: SampleWorkload,
  signal: AbortSignal,
): Promise<'streaming' | Interrupted> {
  let ended = false;
  void migration.then(
    () => (ended = true),
    () => (ended = true),
  );
  for (;;) {
    if (ended) return 'migration';
    if (workload.failure()) return 'writers';
    if (signal.aborted) return 'stopped';
    const status = await readTaskStatus(control, TASK);
    const running = status?.phases.some((p) => p.phase === 'incremental' && p.status === 'running');
    if (running && status?.stream?.lagSeconds != null) return 'streaming';
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Lets the stream run under the writes for `secs`, reading its lag every half second. */
async function streamFor(
  control: Client,
  secs: number,
  migration: Promise<unknown>,
  workload: SampleWorkload,
  signal: AbortSignal,
): Promise<{ atStop: number | null; max: number | null; ended?: Interrupted }> {
  let ended = false;
  void migration.then(
    () => (ended = true),
    () => (ended = true),
  );
  let max: number | null = null;
  let last: number | null = null;
  const until = Date.now() + secs * 1000;
  for (;;) {
    if (ended) return { atStop: last, max, ended: 'migration' };
    if (workload.failure()) return { atStop: last, max, ended: 'writers' };
    if (signal.aborted) return { atStop: last, max, ended: 'stopped' };
    last = (await readTaskStatus(control, TASK))?.stream?.lagSeconds ?? null;
    if (last !== null) max = Math.max(max ?? 0, last);
    if (Date.now() >= until) return { atStop: last, max };
    await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, until - Date.now()))));
  }
}

/** Says why the demo stops early and returns its exit code; the caller's finally cleans up. */
async function failedDemo(
  why: Interrupted,
  migration: Promise<{ code: number }>,
  workload: SampleWorkload,
  say: (line: string) => void,
): Promise<number> {
  if (why === 'writers') {
    say(`writers      failed: ${workload.failure()!.message}`);
    return 1;
  }
  if (why === 'stopped') {
    say('stopped      interrupted: removing the clusters');
    return 130;
  }
  const { code } = await migration;
  say(`migration    ended with exit code ${code} before the cutover`);
  return code || 1;
}

/** Row count and md5 of the ordered rows of every table, on both sides; one line each. */
async function compareTables(
  source: LocalCluster,
  destination: LocalCluster,
  say: (line: string) => void,
): Promise<DemoTable[]> {
  say('comparing every table on both sides (row count and md5 of the ordered rows):');
  const s = await source.connect(DATABASE);
  const d = await destination.connect(DATABASE);
  const tables: DemoTable[] = [];
  try {
    for (const [schema, table, key] of TABLES) {
      const [a, b] = await Promise.all([
        tableDigest(s, schema, table, key),
        tableDigest(d, schema, table, key),
      ]);
      const equal = a.count === b.count && a.md5 === b.md5;
      tables.push({ table: `${schema}.${table}`, sourceRows: a.count, destinationRows: b.count, equal });
      say(
        `  ${`${schema}.${table}`.padEnd(26)} ${String(a.count).padStart(9)} rows  ${equal ? 'equal' : `DIFFERENT (destination ${b.count} rows)`}`,
      );
    }
  } finally {
    await s.end();
    await d.end();
  }
  return tables;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
