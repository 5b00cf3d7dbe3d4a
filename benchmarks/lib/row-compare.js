// Row by row comparison of a table on two servers: each row's text form, hashed server-side.
// Text forms are compared under the same session settings on both sides.
const SETTINGS = `SET DateStyle = ISO, YMD; SET TimeZone = UTC; SET IntervalStyle = postgres; SET extra_float_digits = 3`;

const ident = (s) => `"${s.replace(/"/g, '""')}"`;

async function rowHashes(client, table, key) {
  await client.query(SETTINGS);
  const k = key.length ? key.map((c) => `t.${ident(c)}::text`).join(` || ',' || `) : `md5(t::text)`;
  const { rows } = await client.query(
    `SELECT ${k} AS k, md5(t::text) AS h, count(*)::int AS n FROM public.${ident(table)} t GROUP BY 1, 2`,
  );
  const m = new Map();
  for (const r of rows) m.set(r.k, { h: r.h, n: r.n });
  return m;
}

/**
 * Compares `table` on the source and a destination: rows missing on the destination, extra on
 * it, and rows present on both whose values differ. Keyed tables match rows by `key`; a keyless
 * table is compared as a multiset of rows (a changed row counts as one missing and one extra).
 */
async function compareTable(source, destination, table, key) {
  const [a, b] = await Promise.all([rowHashes(source, table, key), rowHashes(destination, table, key)]);
  let missing = 0;
  let extra = 0;
  let changed = 0;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) missing += x.n;
    else if (y.h !== x.h) changed++;
    else if (y.n < x.n) missing += x.n - y.n;
    else extra += y.n - x.n;
  }
  for (const [k, y] of b) if (!a.has(k)) extra += y.n;
  const sourceRows = [...a.values()].reduce((n, x) => n + x.n, 0);
  return { sourceRows, missing, extra, changed, differ: missing + extra + changed };
}

/** compareTable for every table of `keys` ({ table: [key columns] }). */
async function compareTables(source, destination, keys) {
  const out = {};
  for (const [table, key] of Object.entries(keys))
    out[table] = await compareTable(source, destination, table, key);
  return out;
}

module.exports = { compareTable, compareTables };
