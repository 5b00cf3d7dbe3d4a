// npm run bench -- debezium [--scale 10] [--seconds 30] [--clients 4] [--toast-rows 200]
//   [--toast-not-null] [--skip-capture-only] [--kafka HOST:PORT] [--out DIR]
// Debezium (Kafka Connect standalone, PostgreSQL source connector 3.6.1.Final, JDBC sink
// connector) and pgferry side by side, on one real Apache Kafka and the same source, one after
// the other in one invocation. Each run starts from the same source content (pgbench-like tables,
// a probe row, a table with a large TOASTed text column):
//   1. Debezium source connector alone: snapshot into Kafka, then pgbench TPC-B for --seconds;
//   2. Debezium source + JDBC sink into a fresh destination database (tables created beforehand);
//   3. pgferry migrate (capture and applier; the capture cannot run without its applier) into a
//      fresh destination database, on the same Kafka with its schema registry beside it.
// Per run: snapshot time (into Kafka, and onto the destination), changes/s from the slot into
// Kafka, lag (max during the load, at its end, catch-up after it stops) in Kafka and on the
// destination, and, on each destination, the rows that differ from the source, compared row by
// row, including the TOAST table after an UPDATE of its other column (default replica identity).
// Prints a table and the ratios pgferry / Debezium; writes the figures as JSON under --out.
// Figures vary with the machine, which is shared: compare ratios from one run, not seconds.
const { mkdirSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { setTimeout } = require('node:timers');
const testing = require('@pgferry/testing');
const { startPostgres, loadPgbenchLike, runPgbench } = testing;
const { follow, followMax, openCounter } = require('./lib/kafka-watch');
const { debeziumPipeline, pgferryPipeline, startRegistry } = require('./lib/pipelines');
const { compareTables } = require('./lib/row-compare');
const { treeCpuSeconds } = require('./lib/process-cpu');
const { printReport } = require('./lib/debezium-report');

const argv = process.argv;
const arg = (name, fallback) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : fallback);
const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const PGBENCH = ['pgbench_branches', 'pgbench_tellers', 'pgbench_accounts', 'pgbench_history'];
const TABLES = [...PGBENCH, 'bench_probe', 'toast_docs'];
const KEYS = {
  pgbench_branches: ['bid'],
  pgbench_tellers: ['tid'],
  pgbench_accounts: ['aid'],
  pgbench_history: [],
  bench_probe: ['id'],
  toast_docs: ['id'],
};
const PLACEHOLDER = '__debezium_unavailable_value';

const ddl = (toastNotNull) => `
  CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
  CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
  CREATE TABLE pgbench_accounts (aid bigint PRIMARY KEY, bid int, abalance int, filler char(84));
  CREATE TABLE pgbench_history (tid int, bid int, aid bigint, delta int, mtime timestamp, filler char(22));
  CREATE TABLE bench_probe (id int PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL);
  CREATE TABLE toast_docs (id int PRIMARY KEY, n int NOT NULL, body text${toastNotNull ? ' NOT NULL' : ''});`;

/** Every run starts from this content: balances 0, no history, probe and TOAST counters 0. */
async function resetSource(s) {
  await s.query(`
    TRUNCATE pgbench_history;
    UPDATE pgbench_accounts SET abalance = 0 WHERE abalance <> 0;
    UPDATE pgbench_tellers SET tbalance = 0 WHERE tbalance <> 0;
    UPDATE pgbench_branches SET bbalance = 0 WHERE bbalance <> 0;
    UPDATE toast_docs SET n = 0 WHERE n <> 0;
    UPDATE bench_probe SET n = 0;`);
  await s.query(`VACUUM ANALYZE`);
}

/** What a destination must show once it holds every change the source has now. */
const STATE = `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text AS a, (SELECT sum(tbalance) FROM pgbench_tellers)::text AS t,
  (SELECT sum(bbalance) FROM pgbench_branches)::text AS b, (SELECT count(*) FROM pgbench_history)::text AS h,
  (SELECT n FROM bench_probe WHERE id = 1)::text AS p, (SELECT sum(n) FROM toast_docs)::text AS x`;
const ROWS = `SELECT ${TABLES.map((t) => `(SELECT count(*) FROM ${t})::int AS ${t}`).join(', ')}`;
const same = (want, got) => Object.keys(want).every((k) => want[k] === got[k]);

async function poll(what, timeoutS, health, check) {
  const deadline = now() + timeoutS;
  for (;;) {
    await health();
    if (await check()) return now();
    if (now() > deadline) throw new Error(`timed out after ${timeoutS}s waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * The TOAST table's update records in Kafka: how many there are and how many carry Debezium's
 * placeholder in place of the unchanged large text.
 */
async function toastInKafka(p, { bootstrap, opts, run }) {
  const counts = { updates: 0, placeholder: 0 };
  const f = await follow(bootstrap, p.topic('toast_docs'), `bench-toast-${run}`, async (value) => {
    const e = value ? await p.decode(value) : null;
    if (e?.op !== 'u') return;
    counts.updates++;
    if (e.after?.body === PLACEHOLDER) counts.placeholder++;
  });
  try {
    await poll(
      'the TOAST table records read back',
      120,
      async () => f.check(),
      () => f.seen() >= 2 * opts.toastRows,
    );
  } finally {
    await f.stop();
  }
  return counts;
}

/** One pipeline from start to stop on the reset source; returns its figures. */
async function measure(p, ctx) {
  const { s, bootstrap, opts, run } = ctx;
  const sum = async (counter, topics) =>
    Object.values(await counter.counts(topics)).reduce((a, b) => a + b, 0);
  await resetSource(s);
  const snapshotRows = (await s.query(ROWS)).rows[0];
  const counter = await openCounter(bootstrap);
  const d = p.destination ? await p.destination.cluster.connect(p.destination.database) : null;
  const r = { pipeline: p.label, snapshotRows: Object.values(snapshotRows).reduce((a, b) => a + b, 0) };
  const health = () => p.health();
  let probe = null;
  const t0 = now();
  await p.start();
  try {
    let firstRecord = null;
    const inKafka = async () => {
      const c = await counter.counts(TABLES.map(p.topic));
      if (firstRecord === null && Object.values(c).some((n) => n > 0)) firstRecord = now();
      return TABLES.every((t) => c[p.topic(t)] >= snapshotRows[t]);
    };
    r.snapshotToKafkaS = (await poll('the snapshot in Kafka', 900, health, inKafka)) - t0;
    // What the start costs before the first row (a JVM, or pgferry's precheck and schema).
    r.firstRecordInKafkaS = (firstRecord ?? now()) - t0;
    if (d) {
      const onDest = async () =>
        same(snapshotRows, (await d.query(ROWS).catch(() => ({ rows: [{}] }))).rows[0]);
      r.snapshotToDestinationS = (await poll('the snapshot on the destination', 900, health, onDest)) - t0;
    }
    await p.streaming();
    const probeN = async (v) => {
      const e = await p.decode(v);
      return e?.after ? Number(e.after.n) : null;
    };
    probe = await followMax(bootstrap, p.topic('bench_probe'), probeN, `bench-probe-${run}`);
    await probe.ready();
    // Probe stamps: stamps[n] is when the source acknowledged the commit that set n.
    const stamps = [0];
    const bump = async () => {
      const { rows } = await s.query(
        `UPDATE bench_probe SET n = n + 1, at = clock_timestamp() WHERE id = 1 RETURNING n`,
      );
      stamps[Number(rows[0].n)] = now();
      return Number(rows[0].n);
    };
    const destN = async () =>
      Number((await d.query(`SELECT n FROM bench_probe WHERE id = 1`)).rows[0]?.n ?? -1);
    // Streaming is live once a change made now has come through.
    const first = await bump();
    await poll('the first streamed change in Kafka', 300, health, () => probe.max() >= first);
    if (d)
      await poll(
        'the first streamed change on the destination',
        300,
        health,
        async () => (await destN()) >= first,
      );
    // The TOAST case: every row updated on its other column; the large text stays unchanged.
    await s.query(`UPDATE toast_docs SET n = n + 1`);
    const base = await sum(counter, PGBENCH.map(p.topic));
    const cpu0 = treeCpuSeconds(p.pids());
    // Lag: the age of the oldest probe change committed on the source and not yet through.
    const lagOf = (seen) => (seen + 1 < stamps.length ? now() - stamps[seen + 1] : 0);
    let stop = false;
    const lag = { kafka: 0, dest: 0, kafkaEnd: 0, destEnd: 0, kafkaAt: 0, destAt: 0 };
    let loadStart = now();
    const prober = (async () => {
      while (!stop) {
        await bump();
        await sleep(200);
      }
    })();
    const sampler = (async () => {
      while (!stop) {
        lag.kafkaEnd = lagOf(probe.max());
        if (lag.kafkaEnd > lag.kafka) [lag.kafka, lag.kafkaAt] = [lag.kafkaEnd, now() - loadStart];
        if (d) {
          lag.destEnd = lagOf(await destN());
          if (lag.destEnd > lag.dest) [lag.dest, lag.destAt] = [lag.destEnd, now() - loadStart];
        }
        await sleep(200);
      }
    })();
    loadStart = now();
    const load = await runPgbench(
      { host: ctx.src.host, port: ctx.src.port, user: ctx.src.user, password: ctx.src.password },
      { database: 'bench', clients: opts.clients, seconds: opts.seconds },
    );
    const loadEnd = now();
    stop = true;
    await Promise.all([prober, sampler]);
    const atEnd = (await sum(counter, PGBENCH.map(p.topic))) - base;
    const last = await bump();
    const want = (await s.query(STATE)).rows[0];
    // Each TPC-B transaction: three UPDATEs and one INSERT into history.
    const changes = 4 * Number(want.h);
    let kafkaDone = null;
    let destDone = null;
    await poll('every change in Kafka and on the destination', 900, health, async () => {
      const inKafka = (await sum(counter, PGBENCH.map(p.topic))) - base;
      if (kafkaDone === null && probe.max() >= last && inKafka >= changes) {
        kafkaDone = now();
        // More records than changes: some were sent twice (at-least-once delivery).
        r.kafkaRecordsForChanges = inKafka;
      }
      if (d && destDone === null && same(want, (await d.query(STATE)).rows[0])) destDone = now();
      return kafkaDone !== null && (!d || destDone !== null);
    });
    Object.assign(r, {
      tps: load.tps,
      loadS: loadEnd - loadStart,
      changes,
      sourceChangesPerS: changes / (loadEnd - loadStart),
      kafkaChangesPerSDuringLoad: atEnd / (loadEnd - loadStart),
      kafkaChangesPerS: changes / (kafkaDone - loadStart),
      kafkaMaxLagS: lag.kafka,
      kafkaMaxLagAtS: lag.kafkaAt,
      kafkaLagAtEndS: lag.kafkaEnd,
      kafkaCatchUpS: kafkaDone - loadEnd,
      cpuSecondsLoadAndCatchUp: treeCpuSeconds(p.pids()) - cpu0,
    });
    r.toastUpdatesInKafka = await toastInKafka(p, ctx);
    if (d) {
      Object.assign(r, {
        destMaxLagS: lag.dest,
        destMaxLagAtS: lag.destAt,
        destLagAtEndS: lag.destEnd,
        destEqualAfterS: destDone - loadEnd,
      });
      r.rows = await compareTables(s, d, KEYS);
      const ph = await d.query(`SELECT count(*)::int AS n FROM toast_docs WHERE body = $1`, [PLACEHOLDER]);
      r.toastPlaceholderRows = ph.rows[0].n;
    }
    r.cpuSecondsTotal = treeCpuSeconds(p.pids());
    return r;
  } catch (err) {
    r.error = err.message;
    return r;
  } finally {
    if (probe) await probe.stop();
    await counter.close();
    if (d) await d.end();
    await p.stop().catch((err) => (r.stopError = err.message));
  }
}

async function startRealKafka(opts) {
  if (opts.kafka) return { bootstrap: opts.kafka, stop: async () => {} };
  if (typeof testing.startKafka !== 'function')
    throw new Error(
      'needs startKafka() from @pgferry/testing (real Apache Kafka), or --kafka HOST:PORT of a running broker',
    );
  const k = await testing.startKafka({ heapMb: 1024 });
  return { bootstrap: k.bootstrap, stop: () => k.remove() };
}

async function main() {
  const opts = {
    scale: Number(arg('scale', 10)),
    seconds: Number(arg('seconds', 30)),
    clients: Number(arg('clients', 4)),
    toastRows: Number(arg('toast-rows', 200)),
    toastNotNull: argv.includes('--toast-not-null'),
    captureOnly: !argv.includes('--skip-capture-only'),
    kafka: arg('kafka', undefined),
    out: arg('out', join(tmpdir(), 'pgferry-bench')),
  };
  const run = Date.now().toString(36);
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-bench-debezium-'));
  const [src, dst, kafka] = await Promise.all([
    startPostgres({ logical: true, settings: { max_wal_size: '4GB' } }),
    startPostgres({ settings: { max_wal_size: '4GB' } }),
    startRealKafka(opts),
  ]);
  let registry = null;
  const results = [];
  try {
    registry = await startRegistry(kafka.bootstrap);
    await src.createDatabase('bench');
    const s = await src.connect('bench');
    await loadPgbenchLike(s, { scale: opts.scale });
    await s.query(`
      CREATE TABLE bench_probe (id int PRIMARY KEY, n bigint NOT NULL, at timestamptz NOT NULL);
      INSERT INTO bench_probe VALUES (1, 0, clock_timestamp());
      CREATE TABLE toast_docs (id int PRIMARY KEY, n int NOT NULL, body text${opts.toastNotNull ? ' NOT NULL' : ''});
      INSERT INTO toast_docs SELECT g, 0, (SELECT string_agg(md5(g || ':' || x), '') FROM generate_series(1, 2000) x)
        FROM generate_series(1, ${opts.toastRows}) g;`);
    const { rows: toast } = await s.query(`SELECT min(pg_column_size(body))::int AS stored FROM toast_docs`);
    if (toast[0].stored <= 2032)
      throw new Error(`toast_docs.body is stored inline (${toast[0].stored} bytes): not a TOAST case`);
    const ctx = { s, src, bootstrap: kafka.bootstrap, opts, run };
    const common = {
      bootstrap: kafka.bootstrap,
      src,
      database: 'bench',
      tables: TABLES,
      keyless: ['pgbench_history'],
    };
    console.log(
      `dataset: pgbench scale ${opts.scale} (${opts.scale * 100000} accounts), toast_docs ${opts.toastRows} rows of ${toast[0].stored}+ stored bytes; load: pgbench TPC-B ${opts.clients} clients ${opts.seconds}s; Kafka ${kafka.bootstrap}`,
    );
    if (opts.captureOnly) {
      const p = debeziumPipeline({ ...common, run: `${run}a`, dir: join(dir, 'dbz-a') });
      results.push(await measure(p, { ...ctx, run: `${run}a` }));
    }
    await dst.createDatabase('dbz');
    await dst.query(ddl(opts.toastNotNull), [], 'dbz');
    const destination = { cluster: dst, database: 'dbz' };
    const dp = debeziumPipeline({ ...common, run: `${run}b`, dir: join(dir, 'dbz-b'), destination });
    results.push(await measure(dp, { ...ctx, run: `${run}b` }));
    await dst.createDatabase('ferry');
    const fp = pgferryPipeline({
      ...common,
      run: `${run}c`,
      dir: join(dir, 'ferry'),
      registry,
      name: `dbzbench_${run}`,
      destination: { cluster: dst, database: 'ferry' },
    });
    results.push(await measure(fp, { ...ctx, run: `${run}c` }));
    await s.end();
  } finally {
    if (registry) await registry.stop();
    await Promise.all([src.stop(), dst.stop(), kafka.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
  const report = { bench: 'debezium', at: new Date().toISOString(), options: opts, results };
  printReport(report);
  mkdirSync(opts.out, { recursive: true });
  const file = join(opts.out, `debezium-${run}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`figures: ${file}`);
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
