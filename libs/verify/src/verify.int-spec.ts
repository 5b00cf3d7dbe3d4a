import type { Client } from 'pg';
import { parseTaskSpec } from '@pgferry/core';
import { resolveSelection } from '@pgferry/pg';
import { createAllTypes, startPostgres, type PgCluster } from '@pgferry/testing';
import { assertVerified, formatVerifyReport } from './verify-report';
import { verifyTables } from './pg-table-verifier';

/** A mismatch's range as the report prints it (its keys as arrays are replay's, compared elsewhere). */
const bounds = (m: {
  from: string | null;
  to: string | null;
  sourceRows: number;
  destinationRows: number;
}) => ({
  from: m.from,
  to: m.to,
  sourceRows: m.sourceRows,
  destinationRows: m.destinationRows,
});

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

  async function select(include: unknown[]) {
    const spec = parseTaskSpec({
      name: 'v',
      source: { url: source.url() },
      destination: { url: destination.url() },
      objects: { include },
    });
    return (await resolveSelection(s, spec.objects)).tables;
  }

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
    expect(lines.mismatches.map(bounds)).toEqual([
      { from: null, to: "('250', 'sku-1')", sourceRows: 1000, destinationRows: 1000 },
      { from: "('1000', 'sku-1')", to: null, sourceRows: 1000, destinationRows: 996 },
    ]);
    // Three connections per server: the same report, ranges in order, and nothing left behind.
    const clients = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend'`;
    const before = [(await s.query(clients)).rows[0].n, (await d.query(clients)).rows[0].n];
    const progress: Record<string, number[]> = {};
    const jobs = await verifyTables(s, d, await selection(), {
      chunkRows: 500,
      jobs: 3,
      connect: { source: () => source.connect(), destination: () => destination.connect() },
      onProgress: (p) => (progress[p.table] ??= []).push(p.chunksDone),
    });
    expect(jobs.tables.find((t) => t.target.includes('Lines'))!.mismatches.map(bounds)).toEqual([
      { from: null, to: "('125', 'sku-1')", sourceRows: 500, destinationRows: 500 },
      { from: "('1000', 'sku-1')", to: "('1125', 'sku-1')", sourceRows: 500, destinationRows: 496 },
    ]);
    // Counted per table as ranges finish on both sides (tables overlap).
    expect(progress).toEqual({
      [`"Shop Ü"."Order ""Lines"""`]: Array.from({ length: 10 }, (_, i) => i + 1),
      [`"Shop Ü"."log"`]: [1],
    });
    expect([(await s.query(clients)).rows[0].n, (await d.query(clients)).rows[0].n]).toEqual(before);
    expect((await s.query('SHOW max_parallel_workers_per_gather')).rows[0]).toEqual({
      max_parallel_workers_per_gather: '2',
    });
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
      // Each further source connection reads under the snapshot too.
      const jobs = await verifyTables(s, d, await selection(), {
        sourceSnapshot: snap,
        chunkRows: 200,
        jobs: 3,
        connect: { source: () => source.connect(), destination: () => destination.connect() },
      });
      expect([jobs.ok, jobs.tables[0].chunks]).toEqual([true, 25]);
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
    // Same rows loaded on the destination through its own text input: equal, with either row hash.
    await createAllTypes(d, 'types', 'all_types');
    const fast = await verifyTables(s, d, tables);
    expect([fast.ok, fast.checksum]).toEqual([true, 'hash']);
    const md5 = await verifyTables(s, d, tables, { checksum: 'md5' });
    expect([md5.ok, md5.checksum]).toEqual([true, 'md5']);
    await d.query(
      `UPDATE types.all_types SET id = id + 1000000 WHERE id = (SELECT min(id) FROM types.all_types)`,
    );
    for (const checksum of ['auto', 'md5'] as const)
      expect((await verifyTables(s, d, tables, { checksum })).tables[0].mismatches.map(bounds)).toEqual([
        { from: null, to: null, sourceRows: 4, destinationRows: 4 },
      ]);
  });

  it('finds, with either row hash, a single changed value, NULL against empty, values swapped between columns or rows, a missing and a duplicated row', async () => {
    const ddl = `
      CREATE SCHEMA rowhash;
      CREATE TABLE rowhash.k (id int PRIMARY KEY, a text, b text, c bpchar, n numeric, f float8, t timestamptz, j jsonb,
                              i int, u uuid, ts timestamp, w bigint, p char(3));
      INSERT INTO rowhash.k VALUES
        (1, 'x', 'y', 'ab', 1.0, 0.1, '2024-01-01 00:00:00+00', '{"a": 1}', 0, '00000000-0000-0000-0000-000000000001', '2024-01-01', 5, 'ab'),
        (2, 'p', 'q', 'cd', 2.50, '-0', '2024-06-01 12:00:00.000001+00', '[1, 2]', 7, NULL, 'infinity', 6, ''),
        (3, NULL, '', 'e', 3, NULL, NULL, NULL, NULL, '00000000-0000-0000-0000-000000000000', NULL, NULL, NULL);
      CREATE TABLE rowhash.nokey (a int, b text);
      INSERT INTO rowhash.nokey SELECT g, 'v' || g FROM generate_series(1, 50) g;`;
    await s.query(ddl);
    // An integer column that is a bigint on the destination, or text: compared by value, or as text.
    await d.query(`${ddl}; ALTER TABLE rowhash.k ALTER i TYPE bigint, ALTER w TYPE text`);
    const tables = await select([{ schema: 'rowhash' }]);
    const differs = async (change: string, undo: string) => {
      await d.query(change);
      try {
        const found: string[] = [];
        for (const checksum of ['auto', 'md5'] as const) {
          const r = await verifyTables(s, d, tables, { checksum });
          found.push(`${r.checksum}: ${r.ok ? 'equal' : 'different'}`);
        }
        return found;
      } finally {
        await d.query(undo);
      }
    };
    const same = await verifyTables(s, d, tables);
    expect([same.ok, same.checksum]).toEqual([true, 'hash']);
    const different = ['hash: different', 'md5: different'];
    const row1 = `UPDATE rowhash.k SET a = 'x', b = 'y' WHERE id = 1`;
    const row2 = `UPDATE rowhash.k SET a = 'p', b = 'q' WHERE id = 2`;
    // Each change, undone after: with either hash, the tables differ.
    const changes: Array<[string, string]> = [
      // A value equal to the old one but printed differently is a change: rows are compared as text.
      [`UPDATE rowhash.k SET n = 1.00 WHERE id = 1`, `UPDATE rowhash.k SET n = 1.0 WHERE id = 1`],
      [`UPDATE rowhash.k SET f = 0.0 WHERE id = 2`, `UPDATE rowhash.k SET f = '-0' WHERE id = 2`],
      [`UPDATE rowhash.k SET c = 'ab ' WHERE id = 1`, `UPDATE rowhash.k SET c = 'ab' WHERE id = 1`],
      [
        `UPDATE rowhash.k SET t = t + interval '1 microsecond' WHERE id = 2`,
        `UPDATE rowhash.k SET t = t - interval '1 microsecond' WHERE id = 2`,
      ],
      // Integers, uuids, timestamps and char(n) are hashed by value: a changed one, or NULL against
      // the value a NULL is hashed as, is still a difference; so is '06' against 6 across int/text.
      [`UPDATE rowhash.k SET i = NULL WHERE id = 1`, `UPDATE rowhash.k SET i = 0 WHERE id = 1`],
      [`UPDATE rowhash.k SET i = 0 WHERE id = 3`, `UPDATE rowhash.k SET i = NULL WHERE id = 3`],
      [`UPDATE rowhash.k SET i = 8 WHERE id = 2`, `UPDATE rowhash.k SET i = 7 WHERE id = 2`],
      [`UPDATE rowhash.k SET w = '06' WHERE id = 2`, `UPDATE rowhash.k SET w = '6' WHERE id = 2`],
      [
        `UPDATE rowhash.k SET u = NULL WHERE id = 3`,
        `UPDATE rowhash.k SET u = '00000000-0000-0000-0000-000000000000' WHERE id = 3`,
      ],
      [
        `UPDATE rowhash.k SET u = '00000000-0000-0000-0000-000000000002' WHERE id = 1`,
        `UPDATE rowhash.k SET u = '00000000-0000-0000-0000-000000000001' WHERE id = 1`,
      ],
      [
        `UPDATE rowhash.k SET ts = '-infinity' WHERE id = 2`,
        `UPDATE rowhash.k SET ts = 'infinity' WHERE id = 2`,
      ],
      [`UPDATE rowhash.k SET ts = '2000-01-01' WHERE id = 3`, `UPDATE rowhash.k SET ts = NULL WHERE id = 3`],
      [`UPDATE rowhash.k SET p = 'ac' WHERE id = 1`, `UPDATE rowhash.k SET p = 'ab' WHERE id = 1`],
      [`UPDATE rowhash.k SET p = NULL WHERE id = 2`, `UPDATE rowhash.k SET p = '' WHERE id = 2`],
      [`UPDATE rowhash.k SET p = '' WHERE id = 3`, `UPDATE rowhash.k SET p = NULL WHERE id = 3`],
      // NULL against '', values swapped between columns and between rows.
      [
        `UPDATE rowhash.k SET a = '', b = NULL WHERE id = 3`,
        `UPDATE rowhash.k SET a = NULL, b = '' WHERE id = 3`,
      ],
      [`UPDATE rowhash.k SET a = 'y', b = 'x' WHERE id = 1`, row1],
      [
        `UPDATE rowhash.k SET a = CASE id WHEN 1 THEN 'p' ELSE 'x' END WHERE id IN (1, 2)`,
        `${row1}; ${row2}`,
      ],
      // A missing row, a duplicated row.
      [`DELETE FROM rowhash.nokey WHERE a = 7`, `INSERT INTO rowhash.nokey VALUES (7, 'v7')`],
      [
        `INSERT INTO rowhash.nokey VALUES (7, 'v7')`,
        `DELETE FROM rowhash.nokey WHERE ctid = (SELECT max(ctid) FROM rowhash.nokey)`,
      ],
    ];
    for (const [change, undo] of changes)
      expect({ change, found: await differs(change, undo) }).toEqual({ change, found: different });
    expect((await verifyTables(s, d, tables)).ok).toBe(true);
  });

  it('hashes char(n) by value only when both sides have the same n: char(3) against char(4) differs by its padding', async () => {
    const ddl = (n: number) => `
      CREATE SCHEMA padded;
      CREATE TABLE padded.t (id int PRIMARY KEY, c char(${n}));
      INSERT INTO padded.t VALUES (1, 'ab'), (2, NULL), (3, '');`;
    await s.query(ddl(3));
    await d.query(ddl(4));
    const tables = await select([{ schema: 'padded' }]);
    for (const checksum of ['auto', 'md5'] as const)
      expect((await verifyTables(s, d, tables, { checksum })).tables[0].mismatches.map(bounds)).toEqual([
        { from: null, to: null, sourceRows: 3, destinationRows: 3 },
      ]);
    await d.query(`ALTER TABLE padded.t ALTER c TYPE char(3)`);
    expect((await verifyTables(s, d, tables)).ok).toBe(true);
  });

  it('compares an odd name renamed on the destination by column name, leaves generated columns out and the session as it was', async () => {
    const fill = (t: string) =>
      `INSERT INTO ${t} ("Kind", id, price, took) SELECT 'k' || (g % 3), g, g * 1.25, g * interval '90 minutes' FROM generate_series(1, 2000) g`;
    await s.query(
      `CREATE TABLE public."My ""odd"" table ü" ("Kind" text, id int, total numeric GENERATED ALWAYS AS (id * 2) STORED, price money, took interval, PRIMARY KEY ("Kind", id))`,
    );
    await s.query(fill(`public."My ""odd"" table ü"`));
    await d.query(
      `CREATE TABLE public."Renamed ü" (extra int, took interval, price money, total numeric GENERATED ALWAYS AS (id * 3) STORED, id int, "Kind" text, PRIMARY KEY ("Kind", id))`,
    );
    await d.query(fill(`public."Renamed ü"`));
    const tables = await select([
      { schema: 'public', tables: ['My "odd" table ü'], renameTables: { 'My "odd" table ü': 'Renamed ü' } },
    ]);
    await s.query(`SET IntervalStyle = 'iso_8601'; SET TimeZone = 'Asia/Kolkata'; SET search_path = public`);
    const progress: string[] = [];
    const report = await verifyTables(s, d, tables, {
      chunkRows: 500,
      onProgress: (p) => progress.push(`${p.table} ${p.chunksDone}/${p.chunks} ${p.rows}`),
    });
    expect(formatVerifyReport(report).split('\n')).toEqual([
      '  equal     "public"."My ""odd"" table ü" -> "public"."Renamed ü": 2000 rows on the source, 2000 on the destination, 4 ranges of "Kind", "id"',
      '            note: generated columns not compared: "total"',
      '            note: columns only on the destination, not compared: "extra"',
    ]);
    expect(progress).toEqual([1, 2, 3, 4].map((n) => `"public"."My ""odd"" table ü" ${n}/4 ${n * 500}`));
    const settings = await s.query(
      `SELECT current_setting('IntervalStyle') AS i, current_setting('TimeZone') AS z, current_setting('search_path') AS p`,
    );
    expect(settings.rows[0]).toEqual({ i: 'iso_8601', z: 'Asia/Kolkata', p: 'public' });

    // Boundaries are every 500th key in ("Kind", id) order: ('k0', 1503), ('k1', 1003), ('k2', 503).
    await d.query(`UPDATE public."Renamed ü" SET price = price + 1::money WHERE "Kind" = 'k1' AND id = 700`);
    const changed = await verifyTables(s, d, tables, { chunkRows: 500 });
    expect(changed.tables[0].mismatches.map(bounds)).toEqual([
      { from: "('k0', '1503')", to: "('k1', '1003')", sourceRows: 500, destinationRows: 500 },
    ]);
    expect(() => assertVerified(changed)).toThrow(
      `("Kind", "id") from ('k0', '1503') to before ('k1', '1003'): 500 rows on the source, 500 on the destination, same count but different contents`,
    );
  });

  it('compares whole a key that sorts differently on the two sides, tables with children or partitions by their own rows, and reports a missing column', async () => {
    const common = `
      CREATE SCHEMA more;
      CREATE TABLE more.parent (id int PRIMARY KEY, v text);
      CREATE TABLE more.child () INHERITS (more.parent);
      INSERT INTO more.parent SELECT g, 'p' || g FROM generate_series(1, 30) g;
      INSERT INTO more.child SELECT g, 'c' || g FROM generate_series(100, 104) g;
      CREATE TABLE more.parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
      CREATE TABLE more.parted_1 PARTITION OF more.parted FOR VALUES FROM (0) TO (500);
      CREATE TABLE more.parted_2 PARTITION OF more.parted FOR VALUES FROM (500) TO (MAXVALUE);
      INSERT INTO more.parted SELECT g, 'v' || g FROM generate_series(1, 1000) g;`;
    await s.query(`${common}
      CREATE TABLE more.coll (code text PRIMARY KEY, v int);
      CREATE TABLE more.cols (id int PRIMARY KEY, a int, b int);`);
    await d.query(`${common}
      CREATE TABLE more.coll (code text COLLATE "und-x-icu" PRIMARY KEY, v int);
      CREATE TABLE more.cols (id int PRIMARY KEY, a int);`);
    for (const c of [s, d])
      await c.query(
        `INSERT INTO more.coll SELECT chr(65 + g % 26) || chr(97 + g % 26) || g, g FROM generate_series(1, 1000) g`,
      );
    const report = await verifyTables(s, d, await select([{ schema: 'more' }]), { chunkRows: 100 });
    expect(formatVerifyReport(report).split('\n')).toEqual([
      '  equal     "more"."child": 5 rows on the source, 5 on the destination, 1 whole-table comparison (no key)',
      '  equal     "more"."coll": 1000 rows on the source, 1000 on the destination, 1 whole-table comparison (key column "code" sorts by C on the source and icu und on the destination)',
      '  MISSING   "more"."cols": "more"."cols" has no column "b" on the destination',
      '  equal     "more"."parent": 30 rows on the source, 30 on the destination, 1 range of "id"',
      '  equal     "more"."parted": 1000 rows on the source, 1000 on the destination, 10 ranges of "id"',
    ]);
    expect(report.ok).toBe(false);
  });
  it('splits a dense integer key by value, walks a sparse one, and still finds rows beyond either end', async () => {
    const setup = `
      CREATE SCHEMA nums;
      CREATE TABLE nums.dense (id bigint PRIMARY KEY, v text);
      INSERT INTO nums.dense SELECT g, 'v' || g FROM generate_series(1, 5000) g WHERE g % 10 <> 0;
      CREATE TABLE nums.sparse (id int PRIMARY KEY, v text);
      INSERT INTO nums.sparse SELECT 3 * g, 'v' || g FROM generate_series(1, 2000) g;
      CREATE TABLE nums.fresh (id int PRIMARY KEY, v text);
      INSERT INTO nums.fresh SELECT g, 'v' || g FROM generate_series(1, 2500) g WHERE g % 10 <> 0;
      CREATE TABLE nums.empty (id int PRIMARY KEY);
      ANALYZE nums.dense, nums.sparse, nums.empty;`;
    await s.query(setup);
    await d.query(setup);
    await d.query(`UPDATE nums.dense SET v = 'changed' WHERE id = 2501`);
    await d.query(`INSERT INTO nums.dense VALUES (0, 'below'), (10000, 'above')`);
    await d.query(`UPDATE nums.sparse SET v = 'changed' WHERE id = 3003`);
    await d.query(`UPDATE nums.fresh SET v = 'changed' WHERE id = 1001`);
    const report = await verifyTables(s, d, await select([{ schema: 'nums' }]), {
      chunkRows: 1000,
      jobs: 2,
      connect: { source: () => source.connect(), destination: () => destination.connect() },
    });
    const by = (name: string) => report.tables.find((t) => t.table === `"nums".${name}`)!;
    // 4500 keys over 1..4999, analyzed: ranges every 1000 values, not every 1000 rows.
    expect(by('"dense"').chunks).toBe(5);
    expect(by('"dense"').mismatches.map(bounds)).toEqual([
      { from: null, to: "('1001')", sourceRows: 900, destinationRows: 901 },
      { from: "('2001')", to: "('3001')", sourceRows: 900, destinationRows: 900 },
      { from: "('4001')", to: null, sourceRows: 900, destinationRows: 901 },
    ]);
    // Keys 3..6000 for 2000 rows are sparse: walked, 1000 rows per range.
    expect(by('"sparse"').mismatches.map(bounds)).toEqual([
      { from: "('3003')", to: null, sourceRows: 1000, destinationRows: 1000 },
    ]);
    // Never analyzed (no estimate): walked, 1000 rows per range.
    expect(by('"fresh"').mismatches.map(bounds)).toEqual([
      { from: null, to: "('1112')", sourceRows: 1000, destinationRows: 1000 },
    ]);
    expect(by('"empty"')).toMatchObject({ chunks: 1, sourceRows: 0, destinationRows: 0, mismatches: [] });
  });
});
