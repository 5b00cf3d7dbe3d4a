// npm run bench -- cdc [--scale 10] [--big-rows 2000000] [--seconds 30] [--clients 4]
//   [--consistency per-key|transactional] [--drain-seconds 8] [--warmup-seconds 5] [--out DIR]
// Change data capture through pgferry and through native logical replication
// (publication/subscription) between the same two clusters, one after the other, each on a
// fresh destination database:
//   0. warm-up: once the stream is live (a change made then has reached the destination),
//      pgbench for --warmup-seconds (5; 0 skips it) and its maximum lag, printed on its own:
//      the first writes meet pgferry's processes just started, their change path not yet
//      compiled by V8; then until the destination caught up;
//   1. pgbench TPC-B (4 clients, 30 s) on the source while the changes stream: source TPS,
//      maximum lag seen on the destination (a probe row stamped on the source every 200 ms),
//      and catch-up time once pgbench stops (until the destination's balances and history
//      match the source's);
//   2. one UPDATE of 2M rows in one transaction: time from its commit until the destination
//      holds it (once the system reports it applied, the destination's sum checked);
//   3. drain rates: pgbench for --drain-seconds (8; 0 skips them) while the stream is stopped,
//      then the time to catch up (native: the subscription disabled; pgferry: the capture
//      stopped, giving slot -> Kafka and slot -> destination, then the applier stopped:
//      Kafka -> destination).
// Prints both and the ratios, and writes the lag over time of both runs to DIR (default
// benchmarks/results): cdc-lag.csv and the chart cdc-lag.svg. Figures vary with the machine: compare ratios, not seconds.
const { spawnSync } = require('node:child_process');
const { cli, spawnMigrate } = require('./lib/pgferry');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { clearInterval, setInterval, setTimeout } = require('node:timers');
const { startPostgres, loadPgbenchLike, runPgbench } = require('@pgferry/testing');
const { readStreamLag } = require('@pgferry/control');
const { parseLsn } = require('@pgferry/pg');
const { writeLagChart } = require('./lib/lag-chart');
const { descendants, rssBytes, treeCpuSeconds } = require('./lib/process-cpu');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

/** What the load is doing, for the memory sampler: 'load' (pgbench), then 'big UPDATE'. */
let phase = 'start';

/**
 * Samples the resident memory and the CPU time of pgferry's capture and applier processes
 * (children of the migrate process) every 250 ms; `stop()` gives the largest memory per role and
 * phase in MB (`max`) and the CPU seconds each role used in each phase (`cpu`): a figure a busy
 * shared machine disturbs far less than wall time.
 */
function sampleRss(rootPid) {
  const max = {};
  const cpu = {};
  const seen = new Map();
  const timer = setInterval(() => {
    for (const { pid, cmdline } of descendants(rootPid)) {
      const role = /apps\/(capture|applier)\//.exec(cmdline)?.[1];
      if (!role) continue;
      const key = `${role} ${phase}`;
      max[key] = Math.max(max[key] ?? 0, rssBytes(pid) / 2 ** 20);
      const used = treeCpuSeconds([pid]);
      cpu[key] = (cpu[key] ?? 0) + Math.max(0, used - (seen.get(pid) ?? used));
      seen.set(pid, used);
    }
  }, 250);
  return {
    stop() {
      clearInterval(timer);
      return { max, cpu };
    },
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const DDL = `
  CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE pgbench_accounts (aid bigint PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE pgbench_history (tid int, bid int, aid bigint, delta int, mtime timestamp, filler char(22));
  CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, pad text);
  CREATE TABLE bench_probe (id int PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL);`;

/** The figures a destination holding everything the source has now must show, by key. */
const STATE = {
  bal: '(SELECT sum(abalance) FROM pgbench_accounts)::text',
  hist: '(SELECT count(*) FROM pgbench_history)::text',
  big: '(SELECT sum(v) FROM big)::text',
};

/**
 * What the destination must show once it holds everything the source has now: the figures of
 * `keys` only: each is a scan of its table, and the destination is polled with them while it
 * applies (see `waitUntil`).
 */
async function sourceState(s, keys) {
  const { rows } = await s.query(`SELECT ${keys.map((k) => `${STATE[k]} AS ${k}`).join(', ')}`);
  return rows[0];
}

/**
 * Polls the destination until it shows `want` for `keys`. A poll is a scan, which the probe
 * should not make a load of its own: it runs in one backend (no parallel workers), and the
 * next starts after a pause as long as the poll took (100 ms at least). The sum over big, bloated
 * by the UPDATE being applied, took a quarter of the machine's CPU during pgferry's apply of it
 * when polled back to back with parallel workers (perf, the whole machine).
 */
async function waitUntil(d, want, keys) {
  for (;;) {
    const started = now();
    const got = await sourceState(d, keys).catch(() => null);
    if (got && keys.every((k) => got[k] === want[k])) return;
    await sleep(Math.max(100, (now() - started) * 1000));
  }
}

/**
 * Until the destination holds a transaction committed after `lsn` and shows `want`: first until
 * the system reports it applied past `lsn` (`holds`, a read of a few rows, every 100 ms), then
 * the exact figures, polled as `waitUntil` does. A sum over big, bloated by the UPDATE being
 * applied, is a scan of twice its rows: even in one backend and paced, it took CPU on a machine
 * where pgferry's apply of that UPDATE is CPU-bound.
 */
async function holdsThenExact(d, lsn, holds, want, keys) {
  while (!(await holds(d, lsn))) await sleep(100);
  await waitUntil(d, want, keys);
}

/** Native: the subscription's replication origin on the destination is past `lsn`. */
async function nativeHolds(d, lsn) {
  const { rows } = await d.query(
    `SELECT coalesce(max(remote_lsn) > $1::pg_lsn, false) AS done FROM pg_replication_origin_status`,
    [lsn],
  );
  return rows[0].done;
}

/** pgferry: the applied position its status reports (stream marks against stored offsets). */
async function pgferryHolds(d, lsn) {
  const { appliedLsn } = await readStreamLag(d, 'cdcbench', 0);
  return appliedLsn !== null && parseLsn(appliedLsn) > parseLsn(lsn);
}

/** The destination connection the bench measures with (see `waitUntil`). */
async function probeConnection(dst, database) {
  const d = await dst.connect(database);
  await d.query(`SET max_parallel_workers_per_gather = 0`);
  return d;
}

/**
 * pgbench for `seconds` while a probe row stamped on the source every 200 ms measures the lag on
 * the destination (the caller then waits for the destination to catch up).
 */
async function underLoad(src, s, d, clients, seconds, name) {
  let stop = false;
  let maxLag = 0;
  let maxLagAt = 0;
  const samples = [];
  const loadStart = now();
  // Lag is the age of the newest probe stamp on the destination, counted from the start of the
  // load at most: the row's value from before the load (set when the data was loaded) is no lag.
  const { rows: started } = await s.query(`SELECT clock_timestamp()::text AS t`);
  const probe = (async () => {
    while (!stop) {
      await s.query(`UPDATE bench_probe SET n = n + 1, at = clock_timestamp() WHERE id = 1`);
      await sleep(200);
    }
  })();
  const sampler = (async () => {
    while (!stop) {
      const { rows } = await d.query(
        `SELECT extract(epoch FROM clock_timestamp() - greatest(at, $1::timestamptz))::float8 AS lag FROM bench_probe`,
        [started[0].t],
      );
      if (rows[0]) samples.push([now() - loadStart, rows[0].lag]);
      if (rows[0] && rows[0].lag > maxLag) {
        maxLag = rows[0].lag;
        maxLagAt = now() - loadStart;
      }
      await sleep(200);
    }
  })();
  phase = name;
  const load = await runPgbench(
    { host: src.host, port: src.port, user: src.user, password: src.password },
    { database: 'bench', clients, seconds },
  );
  const ended = now();
  stop = true;
  await Promise.all([probe, sampler]);
  return { load, maxLag, maxLagAt, samples, ended };
}

/** pgbench for `seconds` while a probe measures the lag, then catch-up, then the big update. */
async function measure(
  label,
  src,
  s,
  d,
  { seconds, clients, bigRows, drainSeconds, warmupSeconds },
  drain,
  holds,
  inKafka,
) {
  // The stream is live once a change made now reaches the destination: native's subscription
  // after its initial copy, pgferry's capture and applier after the full load. The warm-up and
  // then the load start from there, the same for both.
  const live = now();
  const { rows: probed } = await s.query(
    `UPDATE bench_probe SET n = n + 1, at = clock_timestamp() WHERE id = 1 RETURNING n::text AS n`,
  );
  for (;;) {
    const { rows } = await d.query(`SELECT n::text AS n FROM bench_probe`).catch(() => ({ rows: [] }));
    if (rows[0]?.n === probed[0].n) break;
    await sleep(50);
  }
  const startUp = now() - live;
  // The first writes after the stream starts meet processes whose code is not compiled for the
  // change path yet (pgferry's are Node.js: V8 compiles what runs, then optimizes what runs
  // often); native's apply worker is C. Measured on its own and printed, then the load.
  const warmup = warmupSeconds > 0 ? await underLoad(src, s, d, clients, warmupSeconds, 'warm-up') : null;
  if (warmup) await waitUntil(d, await sourceState(s, ['bal', 'hist']), ['bal', 'hist']);
  const { load, maxLag, maxLagAt, samples, ended } = await underLoad(src, s, d, clients, seconds, 'load');
  await waitUntil(d, await sourceState(s, ['bal', 'hist']), ['bal', 'hist']);
  const catchUp = now() - ended;
  // One transaction of the whole table.
  phase = 'big UPDATE';
  const t = now();
  await s.query('BEGIN');
  await s.query(`UPDATE big SET v = v + 1`);
  // Before the commit record: the destination holds the transaction once it reports having
  // applied past this position (see holdsThenExact).
  const { rows: before } = await s.query(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
  await s.query('COMMIT');
  const committed = now();
  // pgferry: when the capture had the whole transaction acknowledged by Kafka.
  const { rows: at } = await s.query(`SELECT pg_current_wal_lsn()::text AS lsn`);
  let bigInKafka = null;
  const kafka = inKafka?.(d, at[0].lsn).then(() => (bigInKafka = now() - committed));
  await holdsThenExact(d, before[0].lsn, holds, await sourceState(s, ['big']), ['big']);
  const bigApplied = now() - committed;
  await kafka;
  phase = 'drain';
  const drained = drainSeconds > 0 ? await drain({ src, s, d, clients, seconds: drainSeconds }) : null;
  const r = {
    tps: load.tps,
    maxLag,
    catchUp,
    bigApplied,
    bigStatement: committed - t,
    bigInKafka,
    samples,
    label,
    startUp,
    drained,
    warmup: warmup && { tps: warmup.load.tps, maxLag: warmup.maxLag },
  };
  console.log(
    `${label.padEnd(24)} stream live ${r.startUp.toFixed(1)}s after it started; ${warmup ? `warm-up ${warmupSeconds}s: max lag ${warmup.maxLag.toFixed(1)}s (${warmup.maxLagAt.toFixed(0)}s in); ` : ''}source ${r.tps.toFixed(0)} TPS, max lag ${r.maxLag.toFixed(1)}s (${maxLagAt.toFixed(0)}s into the load), catch-up ${r.catchUp.toFixed(1)}s; ` +
      `${bigRows}-row UPDATE (${r.bigStatement.toFixed(1)}s on the source) applied ${r.bigApplied.toFixed(1)}s after its commit` +
      (bigInKafka === null ? '' : ` (all in Kafka after ${bigInKafka.toFixed(1)}s)`),
  );
  if (drained)
    console.log(
      `${''.padEnd(24)} drain of a ${drainSeconds}s backlog: ${Object.entries(drained)
        .map(
          ([stage, v]) => `${stage} ${v.changes} changes in ${v.seconds.toFixed(1)}s = ${rate(v)} changes/s`,
        )
        .join('; ')}`,
    );
  return r;
}

const rate = (v) => (v.changes / Math.max(v.seconds, 0.01)).toFixed(0);

/** pgbench for `seconds` while nothing streams: the backlog's row changes (TPC-B: 3 updates, 1 insert). */
async function backlog(src, clients, seconds) {
  const load = await runPgbench(
    { host: src.host, port: src.port, user: src.user, password: src.password },
    { database: 'bench', clients, seconds },
  );
  return load.transactions * 4;
}

/** Native: the subscription disabled while the backlog is made, then enabled until caught up. */
async function nativeDrain({ src, s, d, clients, seconds }) {
  await d.query(`ALTER SUBSCRIPTION bench_native DISABLE`);
  const changes = await backlog(src, clients, seconds);
  const want = await sourceState(s, ['bal', 'hist']);
  const t = now();
  await d.query(`ALTER SUBSCRIPTION bench_native ENABLE`);
  await waitUntil(d, want, ['bal', 'hist']);
  return { 'slot -> destination': { changes, seconds: now() - t } };
}

/** The pids of migrate's capture and applier children. */
function pgferryChildren(rootPid) {
  const pids = { capture: [], applier: [] };
  for (const { pid, cmdline } of descendants(rootPid)) {
    const role = /apps\/(capture|applier)\//.exec(cmdline)?.[1];
    if (role) pids[role].push(pid);
  }
  return pids;
}

const signal = (pids, sig) => pids.forEach((pid) => process.kill(pid, sig));

/** Until the capture reported `lsn` confirmed: everything before it acknowledged by Kafka. */
async function captured(d, lsn) {
  for (;;) {
    const { rows } = await d.query(
      `SELECT captured_lsn >= $1::pg_lsn AS done FROM pgferry.stream_status WHERE task = 'cdcbench'`,
      [lsn],
    );
    if (rows[0]?.done) return;
    await sleep(100);
  }
}

/**
 * pgferry: the capture stopped (SIGSTOP) while a backlog is made, then resumed: slot -> Kafka
 * acknowledged (the capture's confirmed LSN, reported about once a second) and slot ->
 * destination; then the applier stopped while a second backlog goes into Kafka, and resumed:
 * Kafka -> destination. The backlogs stay shorter than the consumer group's 10 s session.
 */
function pgferryDrain(rootPid) {
  return async ({ src, s, d, clients, seconds }) => {
    const { capture, applier } = pgferryChildren(rootPid);
    if (!capture.length || !applier.length)
      throw new Error('pgferry drain: no capture or applier process found');
    signal(capture, 'SIGSTOP');
    const changes = await backlog(src, clients, seconds);
    const want = await sourceState(s, ['bal', 'hist']);
    const { rows } = await s.query(`SELECT pg_current_wal_lsn()::text AS lsn`);
    const t = now();
    signal(capture, 'SIGCONT');
    await captured(d, rows[0].lsn);
    const toKafka = now() - t;
    await waitUntil(d, want, ['bal', 'hist']);
    const toDestination = now() - t;

    signal(applier, 'SIGSTOP');
    let resumed = false;
    try {
      const second = await backlog(src, clients, seconds);
      const want2 = await sourceState(s, ['bal', 'hist']);
      const { rows: end } = await s.query(`SELECT pg_current_wal_lsn()::text AS lsn`);
      await captured(d, end[0].lsn);
      const t2 = now();
      signal(applier, 'SIGCONT');
      resumed = true;
      await waitUntil(d, want2, ['bal', 'hist']);
      return {
        'slot -> Kafka acknowledged': { changes, seconds: toKafka },
        'slot -> destination': { changes, seconds: toDestination },
        'Kafka -> destination': { changes: second, seconds: now() - t2 },
      };
    } finally {
      if (!resumed) signal(applier, 'SIGCONT');
    }
  };
}

async function native(src, dst, s, opts) {
  await dst.createDatabase('native');
  const d = await probeConnection(dst, 'native');
  await d.query(DDL);
  await s.query(
    `CREATE PUBLICATION bench_native FOR TABLE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history, big, bench_probe`,
  );
  await d.query(`CREATE SUBSCRIPTION bench_native CONNECTION '${src.url('bench')}' PUBLICATION bench_native`);
  // The initial copy first: streaming starts when every table is ready.
  for (;;) {
    const { rows } = await d.query(
      `SELECT count(*) FILTER (WHERE srsubstate <> 'r')::int AS pending FROM pg_subscription_rel`,
    );
    if (rows[0].pending === 0) break;
    await sleep(200);
  }
  try {
    return await measure('native pub/sub', src, s, d, opts, nativeDrain, nativeHolds);
  } finally {
    await d.query(`DROP SUBSCRIPTION bench_native`);
    await s.query(`DROP PUBLICATION bench_native`);
    await d.end();
  }
}

/**
 * Before each system: the clusters as settled for the second one as for the first. A
 * per-second sampler of the processes showed autovacuum of the source's tables (the garbage of
 * native's load and 2M-row UPDATE) running inside pgferry's big UPDATE and none in native's, and
 * pgferry's load ran on tables bloated by native's. So the source's tables are rewritten compact
 * and analyzed (as a fresh load leaves them, with every tuple's visibility known) before each
 * system, native's destination database is dropped once its run is measured (nothing reads it
 * again), and both clusters are checkpointed.
 */
async function settle(dst, s, { dropNative }) {
  const admin = await dst.connect('postgres');
  try {
    if (dropNative) await admin.query(`DROP DATABASE native`);
    await admin.query(`CHECKPOINT`);
  } finally {
    await admin.end();
  }
  await s.query(
    `VACUUM (FULL, ANALYZE) big, pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history`,
  );
  await s.query(`CHECKPOINT`);
}

async function pgferry(src, dst, s, dir, opts) {
  await dst.createDatabase('ferry');
  const spec = join(dir, 'spec.json');
  writeFileSync(
    spec,
    JSON.stringify({
      name: 'cdcbench',
      source: { url: src.url('bench') },
      destination: { url: dst.url('ferry') },
      migrationTypes: { incremental: true },
      options: { consistency: opts.consistency },
    }),
  );
  const child = spawnMigrate(spec, join(dir, 'work'));
  let out = '';
  child.stdout.on('data', (b) => (out += b));
  const exited = new Promise((r) => child.once('exit', r));
  const d = await probeConnection(dst, 'ferry');
  try {
    // The full load first: streaming starts with the incremental phase.
    for (;;) {
      const { rows } = await d
        .query(`SELECT status FROM pgferry.phases WHERE task = 'cdcbench' AND phase = 'incremental'`)
        .catch(() => ({ rows: [] }));
      if (rows[0]?.status === 'running') break;
      if (child.exitCode !== null) throw new Error(`pgferry migrate exited early:\n${out.slice(-3000)}`);
      await sleep(200);
    }
    const rss = sampleRss(child.pid);
    const r = await measure(
      `pgferry (through Kafka, ${opts.consistency})`,
      src,
      s,
      d,
      opts,
      pgferryDrain(child.pid),
      pgferryHolds,
      captured,
    );
    const { max: memory, cpu } = rss.stop();
    console.log(
      `pgferry largest resident memory: ${Object.entries(memory)
        .map(([k, mb]) => `${k} ${mb.toFixed(0)} MB`)
        .join(', ')}`,
    );
    const bigCpu = ['capture', 'applier'].map((role) => cpu[`${role} big UPDATE`] ?? 0);
    console.log(
      `pgferry CPU seconds: ${Object.entries(cpu)
        .map(([k, sec]) => `${k} ${sec.toFixed(1)}`)
        .join(
          ', ',
        )}; per million changes of the big UPDATE: capture ${((bigCpu[0] * 1e6) / opts.bigRows).toFixed(1)} s, applier ${((bigCpu[1] * 1e6) / opts.bigRows).toFixed(1)} s`,
    );
    const cut = spawnSync(process.execPath, [cli, 'cutover', '--spec', spec, '--timeout', '300'], {
      encoding: 'utf8',
    });
    if (cut.status !== 0) throw new Error(`pgferry cutover failed:\n${cut.stdout}${cut.stderr}`);
    const code = await exited;
    if (code !== 0) throw new Error(`pgferry migrate failed (${code}):\n${out.slice(-3000)}`);
    const rel = spawnSync(process.execPath, [cli, 'release', '--spec', spec], { encoding: 'utf8' });
    if (rel.status !== 0) throw new Error(`pgferry release failed:\n${rel.stdout}${rel.stderr}`);
    if (process.argv.includes('--verbose')) process.stdout.write(out);
    return r;
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await d.end();
  }
}

async function main() {
  const scale = arg('scale', 10);
  const { bigRows } = { bigRows: arg('big-rows', 2_000_000) };
  const opts = {
    seconds: arg('seconds', 30),
    clients: arg('clients', 4),
    bigRows: arg('big-rows', 2_000_000),
    drainSeconds: arg('drain-seconds', 8),
    warmupSeconds: arg('warmup-seconds', 5),
    consistency: process.argv.includes('--consistency')
      ? process.argv[process.argv.indexOf('--consistency') + 1]
      : 'per-key',
    out: process.argv.includes('--out')
      ? process.argv[process.argv.indexOf('--out') + 1]
      : join(__dirname, 'results'),
  };
  if (!['per-key', 'transactional'].includes(opts.consistency))
    throw new Error(`--consistency must be per-key or transactional, got ${opts.consistency}`);
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-bench-cdc-'));
  const [src, dst] = await Promise.all([
    startPostgres({ logical: true, settings: { max_wal_size: '4GB' } }),
    startPostgres({ settings: { max_wal_size: '4GB' } }),
  ]);
  try {
    await src.createDatabase('bench');
    const s = await src.connect('bench');
    await loadPgbenchLike(s, { scale });
    await s.query(`
      CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, pad text);
      INSERT INTO big SELECT g, 0, md5(g::text) FROM generate_series(1, ${bigRows}) g;
      CREATE TABLE bench_probe (id int PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL);
      INSERT INTO bench_probe VALUES (1, 0, clock_timestamp());
      ANALYZE;`);
    console.log(
      `dataset: pgbench scale ${scale}, big ${bigRows} rows; load: pgbench TPC-B ${opts.clients} clients ${opts.seconds}s, then one UPDATE of every row of big`,
    );
    await settle(dst, s, { dropNative: false });
    const n = await native(src, dst, s, opts);
    await settle(dst, s, { dropNative: true });
    const f = await pgferry(src, dst, s, dir, opts);
    const chart = writeLagChart(
      opts.out,
      'cdc-lag',
      [n, f],
      `Lag under pgbench TPC-B (${opts.clients} clients, scale ${scale}): native pub/sub and pgferry ${opts.consistency}`,
    );
    console.log(`lag over time: ${chart.csvPath}, ${chart.svgPath}`);
    console.log(
      `ratios pgferry / native: source TPS ${(f.tps / n.tps).toFixed(2)}, max lag ${(f.maxLag / Math.max(n.maxLag, 0.2)).toFixed(2)}, ` +
        (f.warmup
          ? `max lag in the warm-up ${(f.warmup.maxLag / Math.max(n.warmup.maxLag, 0.2)).toFixed(2)}, `
          : '') +
        `catch-up ${(f.catchUp / Math.max(n.catchUp, 0.1)).toFixed(2)}, big UPDATE applied ${(f.bigApplied / Math.max(n.bigApplied, 0.1)).toFixed(2)}` +
        (f.drained
          ? `, drain rate (changes/s, pgferry / native's slot -> destination): ${Object.entries(f.drained)
              .map(
                ([stage, v]) =>
                  `${stage} ${(v.changes / v.seconds / (n.drained['slot -> destination'].changes / n.drained['slot -> destination'].seconds)).toFixed(2)}`,
              )
              .join(', ')}`
          : ''),
    );
    await s.end();
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
