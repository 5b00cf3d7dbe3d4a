import type { Client } from 'pg';
import { parseTaskSpec } from '@pgferry/core';
import { resolveSelection } from '@pgferry/pg';
import { createAllTypes, startPostgres, type PgCluster } from '@pgferry/testing';
import { assertVerified, formatVerifyReport, verifyTables } from './pg-table-verifier';

const DDL = `
  CREATE SCHEMA "Shop Ü";
  CREATE TABLE "Shop Ü"."Order ""Lines""" (order_id int, sku text, qty int, note text, at timestamptz, PRIMARY KEY (order_id, sku));
  INSERT INTO "Shop Ü"."Order ""Lines""" (order_id, sku, qty, note, at) SELECT g / 4, 'sku-' || (g % 4), g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' FROM generate_series(1, 5000) g;
  CREATE TABLE "Shop Ü".log (at timestamptz, what jsonb);
  INSERT INTO "Shop Ü".log SELECT timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', jsonb_build_object('g', g) FROM generate_series(1, 300) g;`;

describe('verify: counts and checksums per key range on both servers', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let s: Client;
  let d: Client;
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres(), startPostgres()]);
    await source.query(DDL);
    // The destination has the same rows, a different column order and TimeZone, and the schema renamed.
    await destination.query(`ALTER DATABASE postgres SET TimeZone = 'Asia/Kolkata'`);
    await destination.query(
      DDL.replace(/"Shop Ü"/g, 'shop').replace(
        '(order_id int, sku text, qty int, note text, at timestamptz,',
        '(note text, at timestamptz, qty int, sku text, order_id int,',
      ),
    );
    s = await source.connect();
    d = await destination.connect();
    await createAllTypes(s, 'types', 'all_types');
  });
  afterAll(async () => {
    await s?.end();
    await d?.end();
    await Promise.all([source?.stop(), destination?.stop()]);
  });

  async function selection() {
    const spec = parseTaskSpec({
      name: 'v',
      source: { url: source.url() },
      destination: { url: destination.url() },
      objects: { include: [{ schema: 'Shop Ü', renameTo: 'shop' }] },
    });
    return (await resolveSelection(s, spec.objects)).tables;
  }

  it('passes equal tables, keyed and keyless, renamed, whatever the column order and time zone', async () => {
    const progress: number[] = [];
    const report = await verifyTables(s, d, await selection(), {
      chunkRows: 1000,
      onProgress: (p) => progress.push(p.chunksDone),
    });
    expect(formatVerifyReport(report).split('\n')).toEqual([
      '  equal     "Shop Ü"."Order ""Lines""" -> "shop"."Order ""Lines""": 5000 rows on the source, 5000 on the destination, 5 ranges of "order_id", "sku"',
      '  equal     "Shop Ü"."log" -> "shop"."log": 300 rows on the source, 300 on the destination, 1 whole-table comparison (no key)',
    ]);
    expect(assertVerified(report)).toBe('2 tables equal (5300 rows compared by count and checksum)');
    expect(progress.length).toBe(6);
  });

  it('finds a changed value, a missing row and an extra row, with their key ranges', async () => {
    await d.query(`UPDATE shop."Order ""Lines""" SET note = 'changed' WHERE order_id = 10 AND sku = 'sku-1'`);
    await d.query(`DELETE FROM shop."Order ""Lines""" WHERE order_id = 1100`);
    await d.query(`INSERT INTO shop.log VALUES ('2030-01-01', '{}')`);
    const report = await verifyTables(s, d, await selection(), { chunkRows: 1000 });
    expect(report.ok).toBe(false);
    const lines = report.tables.find((t) => t.target.includes('Lines'))!;
    expect(lines.mismatches).toEqual([
      { from: null, to: "('250', 'sku-1')", sourceRows: 1000, destinationRows: 1000 },
      { from: "('1000', 'sku-1')", to: null, sourceRows: 1000, destinationRows: 996 },
    ]);
    expect(() => assertVerified(report)).toThrow(
      [
        'verify found 2 tables that differ between source and destination:',
        '  DIFFERENT "Shop Ü"."Order ""Lines""" -> "shop"."Order ""Lines""": 5000 rows on the source, 4996 on the destination, 5 ranges of "order_id", "sku"',
        `            ("order_id", "sku") before ('250', 'sku-1'): 1000 rows on the source, 1000 on the destination, same count but different contents`,
        `            ("order_id", "sku") from ('1000', 'sku-1') to the end: 1000 rows on the source, 996 on the destination`,
        '  DIFFERENT "Shop Ü"."log" -> "shop"."log": 300 rows on the source, 301 on the destination, 1 whole-table comparison (no key)',
        '            the whole table: 300 rows on the source, 301 on the destination',
      ].join('\n'),
    );
  });

  it('reads the source under the snapshot the destination was loaded from, so later writes are not differences', async () => {
    // Bring both sides back to equal, then hold a snapshot and change the source after it.
    await d.query(`DELETE FROM shop.log WHERE at = '2030-01-01'`);
    await d.query(`UPDATE shop."Order ""Lines""" SET note = 'n41' WHERE order_id = 10 AND sku = 'sku-1'`);
    await s.query(`DELETE FROM "Shop Ü"."Order ""Lines""" WHERE order_id = 1100`);
    expect((await verifyTables(s, d, await selection())).ok).toBe(true);
    const holder = await source.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const snap = (await holder.query('SELECT pg_export_snapshot() AS snap')).rows[0].snap as string;
      await s.query(`UPDATE "Shop Ü".log SET what = '{"changed": true}' WHERE at < '2024-01-02'`);
      expect((await verifyTables(s, d, await selection(), { sourceSnapshot: snap })).ok).toBe(true);
      const now = await verifyTables(s, d, await selection());
      expect(() => assertVerified(now)).toThrow(
        /"Shop Ü"."log"[\s\S]*The source was compared as it is now, not at the snapshot the destination was loaded from/,
      );
    } finally {
      await holder.end();
    }
  });

  it('compares every built-in type exactly, and reports a table missing on the destination', async () => {
    const spec = parseTaskSpec({
      name: 'v',
      source: { url: source.url() },
      destination: { url: destination.url() },
      objects: { include: [{ schema: 'types' }] },
    });
    const tables = (await resolveSelection(s, spec.objects)).tables;
    const missing = await verifyTables(s, d, tables);
    expect(formatVerifyReport(missing)).toBe(
      '  MISSING   "types"."all_types": "types"."all_types" does not exist on the destination',
    );
    // Same rows loaded on the destination through its own text input: equal.
    await createAllTypes(d, 'types', 'all_types');
    expect((await verifyTables(s, d, tables)).ok).toBe(true);
    await d.query(
      `UPDATE types.all_types SET id = id + 1000000 WHERE id = (SELECT min(id) FROM types.all_types)`,
    );
    expect((await verifyTables(s, d, tables)).tables[0].mismatches).toEqual([
      { from: null, to: null, sourceRows: 4, destinationRows: 4 },
    ]);
  });
});
