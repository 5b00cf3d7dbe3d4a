import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { brokerForTasks, captureOutput, startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { readTaskStatus } from './api/task-status';

/**
 * Row filters, column lists, operation selection and objects.nameCase end to end (docs/filters.md):
 * snapshot, then a stream that moves rows in and out of the filter, deletes and truncates, in
 * both consistency modes; the destination must equal the same SELECT on the source.
 */
describe('pgferry migrate: row filters, column lists, operations and nameCase', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-filters-'));
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

  const rows = async (c: Client, sql: string) => (await c.query(sql)).rows;
  // What the destination must hold: the source through the task's view, in upper case.
  const VIEWS = {
    orders: [
      `SELECT id AS "ID", region AS "REGION", amount AS "AMOUNT" FROM sales.orders WHERE region = 'eu' ORDER BY 1`,
      `SELECT * FROM "SALES"."ORDERS" ORDER BY 1`,
    ],
    customers: [
      `SELECT id AS "ID", name AS "NAME", country AS "COUNTRY" FROM sales.customers ORDER BY 1`,
      `SELECT * FROM "SALES"."CUSTOMERS" ORDER BY 1`,
    ],
    mixed: [
      `SELECT "Id" AS "ID", "Val" AS "VAL" FROM sales."Mixed" ORDER BY 1`,
      `SELECT * FROM "SALES"."MIXED" ORDER BY 1`,
    ],
  };

  it.each(['per-key', 'transactional'])(
    'consistency %s: the destination equals the filtered, column-limited SELECT in upper case; deletes and truncates left out are counted, and so is DDL',
    async (consistency) => {
      const name = `filters_${consistency.replace('-', '_')}`;
      await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
      const s = await source.connect(name);
      const d = await destination.connect(name);
      await s.query(`CREATE SCHEMA sales;
        -- The filter reads region, so the replica identity must cover it (PostgreSQL's rule).
        CREATE TABLE sales.orders (id int PRIMARY KEY, region text NOT NULL, amount int NOT NULL);
        ALTER TABLE sales.orders REPLICA IDENTITY FULL;
        INSERT INTO sales.orders SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 300) g;
        CREATE TABLE sales.customers (id int PRIMARY KEY, name text, country text, internal_note text);
        INSERT INTO sales.customers SELECT g, 'c' || g, 'FR', 'secret ' || g FROM generate_series(1, 100) g;
        CREATE TABLE sales.events (id int PRIMARY KEY, v int NOT NULL);
        INSERT INTO sales.events SELECT g, g FROM generate_series(1, 100) g;
        CREATE TABLE sales."Mixed" ("Id" int PRIMARY KEY, "Val" text);
        INSERT INTO sales."Mixed" SELECT g, 'v' || g FROM generate_series(1, 50) g;`);
      const spec = join(dir, `${name}.json`);
      writeFileSync(
        spec,
        JSON.stringify({
          name,
          source: { url: source.url(name) },
          destination: { url: destination.url(name) },
          migrationTypes: { incremental: true },
          objects: {
            nameCase: 'upper',
            include: [
              {
                schema: 'sales',
                tables: ['orders', 'customers', 'Mixed'],
                where: { orders: "region = 'eu'" },
                columns: { customers: ['id', 'name', 'country'] },
              },
              { schema: 'sales', tables: ['events'], operations: ['insert', 'update'] },
            ],
          },
          options: { consistency },
          // Schema changes on the first entry's tables would be replayed with the source's names.
          precheck: { acknowledge: ['name-case-ddl'] },
        }),
      );
      const out = captureOutput();
      const migration = runMigrate({ spec, workDir: join(dir, name), inProcess: true, out: out.out });
      migration.catch(() => undefined);
      await waitFor(
        async () =>
          (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
          (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
        { reason: 'the incremental phase to start', until: (v) => v === 'running', timeout: 120_000 },
      );
      // The snapshot went through the view.
      for (const [want, got] of Object.values(VIEWS)) expect(await rows(d, got)).toEqual(await rows(s, want));
      expect(await rows(d, `SELECT count(*)::int AS n FROM "SALES"."EVENTS"`)).toEqual([{ n: 100 }]);

      // Rows move into the filter (us -> eu: an insert on the destination) and out of it (a
      // delete there), change inside it, and are deleted and inserted.
      await s.query(`UPDATE sales.orders SET region = 'eu' WHERE id % 6 = 1`);
      await s.query(`UPDATE sales.orders SET region = 'us', amount = amount + 1 WHERE id % 10 = 0`);
      await s.query(`UPDATE sales.orders SET amount = amount * 2 WHERE region = 'eu' AND id % 7 = 0`);
      await s.query(`DELETE FROM sales.orders WHERE id % 25 = 2`);
      await s.query(
        `INSERT INTO sales.orders SELECT g, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(301, 360) g`,
      );
      await s.query(
        `UPDATE sales.customers SET name = name || '!', internal_note = 'changed' WHERE id % 4 = 0`,
      );
      await s.query(`DELETE FROM sales.customers WHERE id % 9 = 0`);
      await s.query(`INSERT INTO sales.customers VALUES (500, 'new', 'DE', 'hidden')`);
      await s.query(`UPDATE sales."Mixed" SET "Val" = 'changed' WHERE "Id" % 5 = 0`);
      await s.query(`TRUNCATE sales."Mixed"`);
      await s.query(`INSERT INTO sales."Mixed" SELECT g, 'after' || g FROM generate_series(1, 20) g`);
      // events: inserts and updates are carried; its deletes and truncate are not.
      await s.query(`INSERT INTO sales.events SELECT g, g FROM generate_series(101, 120) g`);
      await s.query(`UPDATE sales.events SET v = v + 1000 WHERE id % 10 = 0`);
      const kept = await rows(s, `SELECT id AS "ID", v AS "V" FROM sales.events ORDER BY 1`);
      await s.query(`DELETE FROM sales.events WHERE id <= 10`);
      await s.query(`TRUNCATE sales.events`);
      await s.query(`INSERT INTO sales.events SELECT g, g FROM generate_series(1000, 1004) g`);
      // DDL on a table whose entry leaves ddl out: reported, not applied.
      await s.query(`ALTER TABLE sales.events ADD COLUMN note text`);

      const cut = captureOutput();
      const code = await runCutover({ spec, timeout: 120 }, cut.out);
      expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
      const done = await migration;
      expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });

      for (const [want, got] of Object.values(VIEWS)) expect(await rows(d, got)).toEqual(await rows(s, want));
      expect(await rows(d, `SELECT * FROM "SALES"."EVENTS" ORDER BY 1`)).toEqual([
        ...kept,
        ...[1000, 1001, 1002, 1003, 1004].map((id) => ({ ID: id, V: id })),
      ]);
      // Left out of the destination's schema: the unlisted column and the skipped DDL's column.
      expect(
        await rows(
          d,
          `SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'SALES' AND table_name IN ('CUSTOMERS', 'EVENTS') ORDER BY 1, ordinal_position`,
        ),
      ).toEqual([
        { table_name: 'CUSTOMERS', column_name: 'ID' },
        { table_name: 'CUSTOMERS', column_name: 'NAME' },
        { table_name: 'CUSTOMERS', column_name: 'COUNTRY' },
        { table_name: 'EVENTS', column_name: 'ID' },
        { table_name: 'EVENTS', column_name: 'V' },
      ]);
      const status = await readTaskStatus(d, name);
      expect(status?.stream?.skipped).toEqual({ insert: 0, update: 0, delete: 10, truncate: 1, ddl: 1 });
      // The cutover compared the tables through the same view.
      expect(out.text()).toContain(
        `  equal     "sales"."orders" -> "SALES"."ORDERS": 182 rows on the source, 182 on the destination, 1 range of "ID"`,
      );
      expect(out.text()).toMatch(
        /skipped {3}"sales"\."events" -> "SALES"\."EVENTS": not compared: objects\.include\[\]\.operations leaves out delete, truncate/,
      );
      expect(out.text()).toContain(
        'cutover      done: 0 sequences set; 3 tables equal (292 rows compared by count and checksum), 1 not compared',
      );
      expect(await runRelease({ spec }, captureOutput().out)).toBe(0);
      await s.end();
      await d.end();
    },
    240_000,
  );
});
