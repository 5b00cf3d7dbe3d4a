// npm run bench -- full [--scale 20] [--mixed-rows 1000000] [--workers 4]
// One source cluster with a pgbench-like dataset (scale 20 = 2M accounts) plus a table of mixed
// types (1M rows by default; about 3M rows / 550 MB in all), copied three ways into fresh
// databases of one destination cluster, in the same run:
//   1. a direct COPY TO STDOUT | COPY FROM STDIN pipe per table (tables in parallel), data only;
//   2. pgcopydb clone (Debian package pgcopydb): schema, data, indexes;
//   3. pgferry migrate on the embedded broker: precheck, schema, data through Kafka, indexes.
// Prints each time, the ratios, and pgferry's peak memory (capture, applier and broker share one
// process in the embedded default). Figures vary with the machine: compare ratios, not seconds.
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { pipeline } = require('node:stream/promises');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { startPostgres, loadPgbenchLike, findPgBinDir, serverUser } = require('@pgferry/testing');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const secs = (t) => (Number(process.hrtime.bigint() - t) / 1e9).toFixed(1);

async function copyPipe(src, dst, workers) {
  const s = await src.connect('bench');
  const { rows } = await s.query(`SELECT c.relname FROM pg_class c WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY pg_relation_size(c.oid) DESC`);
  const d = await dst.connect('pipe');
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
      const b = await dst.connect('pipe');
      for (let name = queue.shift(); name; name = queue.shift()) {
        await pipeline(a.query(copyTo(`COPY "${name}" TO STDOUT`)), b.query(copyFrom(`COPY "${name}" FROM STDIN`)));
      }
      await a.end();
      await b.end();
    }),
  );
  return secs(t);
}

function pgcopydb(src, dst, workers, dir) {
  const bin = findPgBinDir();
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PGCOPYDB_SOURCE_PGURI: src.url('bench'), PGCOPYDB_TARGET_PGURI: dst.url('copydb') };
  const t = process.hrtime.bigint();
  const r = spawnSync('pgcopydb', ['clone', '--table-jobs', String(workers), '--index-jobs', String(workers), '--dir', dir, '--no-owner', '--no-acl'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgcopydb failed (${r.status}): ${(r.stderr || '').split('\n').slice(-15).join('\n')}`);
  return secs(t);
}

async function pgferry(src, dst, workers, dir) {
  const spec = join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({ name: 'bench', source: { url: src.url('bench') }, destination: { url: dst.url('ferry') }, options: { snapshotWorkers: workers, chunkRows: 250000 } }));
  const main = join(__dirname, '..', 'apps', 'controller', 'dist', 'main.js');
  const t = process.hrtime.bigint();
  const child = spawn(process.execPath, [main, 'migrate', '--spec', spec, '--work-dir', join(dir, 'work')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let peakKb = 0;
  child.stdout.on('data', (d) => (out += d));
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch {
      /* exited */
    }
  }, 100);
  const code = await new Promise((r) => child.once('exit', r));
  clearInterval(timer);
  if (code !== 0) throw new Error(`pgferry migrate failed (${code}):\n${out.slice(-3000)}`);
  const phase = (name) => {
    const m = new RegExp(`${name}\\s+done`).exec(out);
    return m ? true : false;
  };
  return { time: secs(t), peakMb: Math.round(peakKb / 1024), ok: phase('full-data') };
}

async function main() {
  const scale = arg('scale', 20);
  const mixedRows = arg('mixed-rows', 1000000);
  const workers = arg('workers', 4);
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-bench-full-'));
  const [src, dst] = await Promise.all([startPostgres({ logical: true }), startPostgres({ settings: { max_wal_size: '4GB' } })]);
  try {
    for (const db of ['pipe', 'copydb', 'ferry']) await dst.createDatabase(db);
    await src.createDatabase('bench');
    const s = await src.connect('bench');
    let t = process.hrtime.bigint();
    await loadPgbenchLike(s, { scale, mixedRows });
    const size = await s.query(`SELECT sum(c.reltuples)::bigint AS rows, pg_size_pretty(pg_database_size(current_database())) AS size FROM pg_class c WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace`);
    await s.end();
    console.log(`dataset: pgbench scale ${scale} + ${mixedRows} mixed rows = ${size.rows[0].rows} rows, ${size.rows[0].size} (loaded in ${secs(t)}s); ${workers} workers`);
    const pipe = await copyPipe(src, dst, workers);
    console.log(`direct COPY pipe (data only)       ${pipe.padStart(7)}s`);
    const runAs = serverUser();
    const copydbDir = join(dir, 'pgcopydb');
    const copydb = pgcopydb(src, dst, workers, copydbDir, runAs);
    console.log(`pgcopydb clone (schema+data+index) ${copydb.padStart(7)}s`);
    const ferry = await pgferry(src, dst, workers, dir);
    console.log(`pgferry migrate (schema+data+index, through Kafka) ${ferry.time.padStart(7)}s, peak memory ${ferry.peakMb} MB (capture + applier + broker in one process)`);
    console.log(`ratios: pgferry / pgcopydb = ${(ferry.time / copydb).toFixed(2)}, pgferry / COPY pipe = ${(ferry.time / pipe).toFixed(2)}, pgcopydb / COPY pipe = ${(copydb / pipe).toFixed(2)}`);
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
