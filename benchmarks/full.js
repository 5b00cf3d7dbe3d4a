// npm run bench -- full [--scale 20] [--mixed-rows 1000000] [--workers 4] [--repeat 1]
// One source cluster with a pgbench-like dataset (scale 20 = 2M accounts) plus a table of mixed
// types (1M rows by default; about 3M rows / 550 MB in all), copied three ways into fresh
// databases of one destination cluster, in the same run:
//   1. a direct COPY TO STDOUT | COPY FROM STDIN pipe per table (tables in parallel), data only;
//   2. pgcopydb clone (Debian package pgcopydb): schema, data, indexes;
//   3. pgferry migrate on the embedded broker: precheck, schema, data through Kafka, indexes.
// Prints each time, the ratios, and pgferry's peak memory per process (controller with the
// embedded broker, capture, applier) and of the whole process tree. Figures vary with the machine: compare ratios, not seconds.
// --repeat N runs the three copies N times in turn (fresh databases each round) and also prints
// the ratios of the best times, which a busy shared machine disturbs less than single runs.
const { spawnSync } = require('node:child_process');
const { spawnMigrate } = require('./lib/pgferry');
const { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { pipeline } = require('node:stream/promises');
const { setInterval, clearInterval } = require('node:timers');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { startPostgres, loadPgbenchLike, findPgBinDir, serverUser } = require('@pgferry/testing');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const secs = (t) => (Number(process.hrtime.bigint() - t) / 1e9).toFixed(1);

async function copyPipe(src, dst, workers, db) {
  const s = await src.connect('bench');
  const { rows } = await s.query(
    `SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY pg_relation_size(c.oid) DESC`,
  );
  const d = await dst.connect(db);
  for (const r of rows) {
    const ddl = await s.query(
      `SELECT 'CREATE TABLE ' || quote_ident($1) || ' (' || string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) || ')' AS sql
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
      [r.relname],
    );
    await d.query(ddl.rows[0].sql);
  }
  await s.end();
  await d.end();
  const queue = rows.map((r) => r.relname);
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      const a = await src.connect('bench');
      const b = await dst.connect(db);
      for (let name = queue.shift(); name; name = queue.shift()) {
        await pipeline(
          a.query(copyTo(`COPY "${name}" TO STDOUT`)),
          b.query(copyFrom(`COPY "${name}" FROM STDIN`)),
        );
      }
      await a.end();
      await b.end();
    }),
  );
  return secs(t);
}

function pgcopydb(src, dst, workers, dir, db) {
  const bin = findPgBinDir();
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    PGCOPYDB_SOURCE_PGURI: src.url('bench'),
    PGCOPYDB_TARGET_PGURI: dst.url(db),
  };
  const t = process.hrtime.bigint();
  const r = spawnSync(
    'pgcopydb',
    [
      'clone',
      '--table-jobs',
      String(workers),
      '--index-jobs',
      String(workers),
      '--dir',
      dir,
      '--no-owner',
      '--no-acl',
    ],
    { env, encoding: 'utf8' },
  );
  if (r.status !== 0)
    throw new Error(`pgcopydb failed (${r.status}): ${(r.stderr || '').split('\n').slice(-15).join('\n')}`);
  return secs(t);
}

/**
 * Samples VmHWM (peak resident set) of a process and of all its descendants every 100 ms, each
 * labelled by its entry script (controller, capture, applier, ...). Returns peaks in MB by label
 * (a label seen twice, e.g. a restarted child, keeps the larger peak) and the peak of the sum of
 * the current resident sets (VmRSS) of the whole tree; also the CPU seconds (user + system) each
 * label used, as last sampled (less noisy than wall time on a shared machine).
 */
function sampleTreePeaks(rootPid) {
  const byPid = new Map();
  let treePeakKb = 0;
  const label = (pid) => {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const script = args.find((a) => a.endsWith('.js')) ?? args[0];
      const m = /apps\/([^/]+)\//.exec(script) ?? /@pgferry\/([^/]+)/.exec(script);
      return m ? m[1] : script.split('/').pop();
    } catch {
      return null;
    }
  };
  const children = (pid) => {
    try {
      return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
        readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
      );
    } catch {
      return [];
    }
  };
  const timer = setInterval(() => {
    const stack = [rootPid];
    let rssKb = 0;
    while (stack.length) {
      const pid = stack.pop();
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
        rssKb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        const cpu = (Number(stat[11]) + Number(stat[12])) / 100;
        const prev = byPid.get(pid) ?? { label: null, kb: 0, cpu: 0 };
        // Read every time: a child just forked still shows the controller's command line, and one
        // that exited shows none.
        byPid.set(pid, {
          label: label(pid) || prev.label,
          kb: Math.max(prev.kb, hwm),
          cpu: Math.max(prev.cpu, cpu),
        });
      } catch {
        /* exited */
      }
      stack.push(...children(pid));
    }
    treePeakKb = Math.max(treePeakKb, rssKb);
  }, 100);
  return {
    stop: () => clearInterval(timer),
    result: () => {
      const parts = {};
      for (const { label: l, kb, cpu } of byPid.values()) {
        if (!l || /^(pg_|psql|sh$|bash$)/.test(l)) continue;
        const p = parts[l] ?? { mb: 0, cpu: 0 };
        parts[l] = { mb: Math.max(p.mb, Math.round(kb / 1024)), cpu: p.cpu + cpu };
      }
      return { parts, treeMb: Math.round(treePeakKb / 1024) };
    },
  };
}

/**
 * CPU seconds a cluster has used so far: its postmaster's own, that of the backends it reaped
 * (cutime/cstime), and that of its live processes. Read before and after a run, with the run's
 * connections closed, the difference is what the run cost the server.
 */
function clusterCpu(cluster) {
  const ticks = (pid, reaped) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0);
  };
  const pid = Number(readFileSync(join(cluster.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let total = ticks(pid, true);
  for (const tid of readdirSync(`/proc/${pid}/task`))
    for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean))
      try {
        total += ticks(child, false);
      } catch {
        /* exited */
      }
  return total / 100;
}

/** Runs `fn`, returning its result with what it cost the source and destination clusters in cpu-s. */
async function withServerCpu(src, dst, fn) {
  const [s0, d0] = [clusterCpu(src), clusterCpu(dst)];
  const result = await fn();
  return { result, sourceCpu: clusterCpu(src) - s0, destinationCpu: clusterCpu(dst) - d0 };
}

/**
 * Before each timed copy, untimed: a checkpoint on both clusters and the OS's dirty pages
 * written out, so that no copy pays for writing out the previous one's data (each copy leaves
 * about 1 GB of table and WAL pages dirty, which the kernel and the checkpointer would otherwise
 * write back during the next copy, always pgferry's in a round).
 */
async function settle(src, dst) {
  await Promise.all([src.query('CHECKPOINT'), dst.query('CHECKPOINT')]);
  spawnSync('sync');
}

async function pgferry(src, dst, workers, dir, db) {
  const spec = join(dir, 'spec.json');
  writeFileSync(
    spec,
    JSON.stringify({
      name: 'bench',
      source: { url: src.url('bench') },
      destination: { url: dst.url(db) },
      options: { snapshotWorkers: workers, chunkRows: 250000 },
    }),
  );
  const t = process.hrtime.bigint();
  const child = spawnMigrate(spec, join(dir, 'work'));
  let out = '';
  const marks = {};
  child.stdout.on('data', (d) => {
    out += d;
    for (const m of String(d).matchAll(/^([a-z-]+)\s+(running|done)\b/gm))
      marks[`${m[1]} ${m[2]}`] ??= process.hrtime.bigint();
  });
  const peaks = sampleTreePeaks(child.pid);
  const code = await new Promise((r) => child.once('exit', r));
  peaks.stop();
  if (code !== 0) throw new Error(`pgferry migrate failed (${code}):\n${out.slice(-3000)}`);
  if (process.argv.includes('--verbose')) process.stdout.write(out);
  const phase = (name) => {
    const m = new RegExp(`${name}\\s+done`).exec(out);
    return m ? true : false;
  };
  const phases = Object.keys(marks)
    .filter((k) => k.endsWith(' running') && marks[k.replace(/running$/, 'done')])
    .map(
      (k) =>
        `${k.slice(0, -8)} ${(Number(marks[k.replace(/running$/, 'done')] - marks[k]) / 1e9).toFixed(1)}s`,
    )
    .join(', ');
  const took = (name) =>
    marks[`${name} done`] && marks[`${name} running`]
      ? Number(marks[`${name} done`] - marks[`${name} running`]) / 1e9
      : 0;
  return { time: secs(t), verify: took('verify'), phases, peaks: peaks.result(), ok: phase('full-data') };
}

async function main() {
  const scale = arg('scale', 20);
  const mixedRows = arg('mixed-rows', 1000000);
  const workers = arg('workers', 4);
  const repeat = arg('repeat', 1);
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-bench-full-'));
  const [src, dst] = await Promise.all([
    startPostgres({ logical: true }),
    startPostgres({ settings: { max_wal_size: '4GB' } }),
  ]);
  try {
    await src.createDatabase('bench');
    const s = await src.connect('bench');
    let t = process.hrtime.bigint();
    await loadPgbenchLike(s, { scale, mixedRows });
    const size = await s.query(
      `SELECT sum(c.reltuples)::bigint AS rows, pg_size_pretty(pg_database_size(current_database())) AS size FROM pg_class c WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`,
    );
    await s.end();
    console.log(
      `dataset: pgbench scale ${scale} + ${mixedRows} mixed rows = ${size.rows[0].rows} rows, ${size.rows[0].size} (loaded in ${secs(t)}s); ${workers} workers`,
    );
    const servers = (r) =>
      `servers: source ${r.sourceCpu.toFixed(1)} cpu-s, destination ${r.destinationCpu.toFixed(1)} cpu-s`;
    const runAs = serverUser();
    const best = { pipe: Infinity, copydb: Infinity, ferry: Infinity, ferryNoVerify: Infinity };
    for (let round = 1; round <= repeat; round++) {
      if (repeat > 1) console.log(`round ${round} of ${repeat}`);
      const dbs = { pipe: `pipe_${round}`, copydb: `copydb_${round}`, ferry: `ferry_${round}` };
      for (const db of Object.values(dbs)) await dst.createDatabase(db);
      const roundDir = join(dir, `round-${round}`);
      mkdirSync(roundDir);
      await settle(src, dst);
      const piped = await withServerCpu(src, dst, () => copyPipe(src, dst, workers, dbs.pipe));
      const pipe = piped.result;
      console.log(`direct COPY pipe (data only)       ${pipe.padStart(7)}s (${servers(piped)})`);
      await settle(src, dst);
      const copied = await withServerCpu(src, dst, async () =>
        pgcopydb(src, dst, workers, join(roundDir, 'pgcopydb'), dbs.copydb, runAs),
      );
      const copydb = copied.result;
      console.log(`pgcopydb clone (schema+data+index) ${copydb.padStart(7)}s (${servers(copied)})`);
      await settle(src, dst);
      const ferried = await withServerCpu(src, dst, () => pgferry(src, dst, workers, roundDir, dbs.ferry));
      const ferry = ferried.result;
      console.log(
        `pgferry migrate (schema+data+index, through Kafka) ${ferry.time.padStart(7)}s (${ferry.phases}; ${servers(ferried)})`,
      );
      const parts = Object.entries(ferry.peaks.parts)
        .map(([k, p]) => `${k} ${p.mb} MB / ${p.cpu.toFixed(1)} cpu-s`)
        .join(', ');
      console.log(
        `pgferry peak RSS / CPU: ${parts}; whole process tree at once ${ferry.peaks.treeMb} MB (the controller holds the embedded broker)`,
      );
      console.log(
        `ratios: pgferry / pgcopydb = ${(ferry.time / copydb).toFixed(2)}, pgferry / COPY pipe = ${(ferry.time / pipe).toFixed(2)}, pgcopydb / COPY pipe = ${(copydb / pipe).toFixed(2)}`,
      );
      // pgcopydb does not compare the tables afterwards; pgferry's verify phase does.
      console.log(
        `same work as pgcopydb (pgferry without its verify phase, ${ferry.verify.toFixed(1)}s): pgferry / pgcopydb = ${((ferry.time - ferry.verify) / copydb).toFixed(2)}`,
      );
      best.pipe = Math.min(best.pipe, Number(pipe));
      best.copydb = Math.min(best.copydb, Number(copydb));
      best.ferry = Math.min(best.ferry, Number(ferry.time));
      best.ferryNoVerify = Math.min(best.ferryNoVerify, ferry.time - ferry.verify);
      // Room for the next round: its copies are in new databases and a new work directory.
      rmSync(roundDir, { recursive: true, force: true });
      for (const db of Object.values(dbs)) await dst.query(`DROP DATABASE ${db} WITH (FORCE)`);
    }
    if (repeat > 1)
      console.log(
        `best of ${repeat}: COPY pipe ${best.pipe.toFixed(1)}s, pgcopydb ${best.copydb.toFixed(1)}s, pgferry ${best.ferry.toFixed(1)}s (${best.ferryNoVerify.toFixed(1)}s without verify); pgferry / pgcopydb = ${(best.ferry / best.copydb).toFixed(2)}, without verify ${(best.ferryNoVerify / best.copydb).toFixed(2)}`,
      );
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
