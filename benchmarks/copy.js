// npm run bench -- copy [--scale N]
// The baseline every pgferry figure is compared with: a direct COPY ... TO STDOUT piped into
// COPY ... FROM STDIN between two local clusters, table by table, on a pgbench-like dataset.
const { pipeline } = require('node:stream/promises');
const { from: copyFrom, to: copyTo } = require('pg-copy-streams');
const { startPostgres, loadPgbenchLike } = require('@pgferry/testing');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main() {
  const scale = arg('scale', 10);
  const mixedRows = arg('mixed-rows', 200000);
  const [src, dst] = await Promise.all([startPostgres(), startPostgres()]);
  try {
    const s = await src.connect();
    let t = Date.now();
    await loadPgbenchLike(s, { scale, mixedRows });
    console.log(
      `loaded scale ${scale} + ${mixedRows} mixed rows in ${((Date.now() - t) / 1000).toFixed(1)}s`,
    );
    const d = await dst.connect();
    const { rows } = await s.query(
      `SELECT relname, pg_relation_size(oid) AS bytes FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname`,
    );
    for (const r of rows) {
      const ddl = await s.query(
        `SELECT 'CREATE TABLE ' || quote_ident($1) || ' (' || string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) || ')' AS sql
           FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
        [r.relname],
      );
      await d.query(ddl.rows[0].sql);
    }
    const totalBytes = rows.reduce((a, r) => a + Number(r.bytes), 0);
    t = Date.now();
    let totalRows = 0;
    for (const r of rows) {
      const name = `"${r.relname}"`;
      const out = s.query(copyTo(`COPY ${name} TO STDOUT`));
      const inp = d.query(copyFrom(`COPY ${name} FROM STDIN`));
      await pipeline(out, inp);
      totalRows += Number(inp.rowCount);
    }
    const secs = (Date.now() - t) / 1000;
    console.log(
      `direct COPY pipe: ${totalRows} rows, ${(totalBytes / 2 ** 20).toFixed(0)} MiB heap in ${secs.toFixed(2)}s ` +
        `(${Math.round(totalRows / secs)} rows/s, ${(totalBytes / 2 ** 20 / secs).toFixed(1)} MiB/s)`,
    );
    await s.end();
    await d.end();
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
