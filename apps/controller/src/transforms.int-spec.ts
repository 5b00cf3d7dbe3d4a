import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { brokerForTasks, captureOutput, startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { runRelease } from './release-command';
import { runReplayCommand } from './replay-command';
import { readTaskStatus } from './api/task-status';

/** The source side of the example, written out by hand: what the destination must equal. */
const CUSTOMERS_VIEW = `SELECT id, name AS full_name, encode(sha256(convert_to(email, 'UTF8')), 'hex') AS email,
       CASE WHEN phone IS NULL THEN NULL ELSE 'REDACTED' END AS phone, country, score,
       upper(country) AS country_code
  FROM sales.customers WHERE country <> 'XX' ORDER BY id`;
const CUSTOMERS_DESTINATION = `SELECT id, full_name, email, phone, country, score, country_code
  FROM sales.customers ORDER BY id`;
/** The module below: notes upper-cased, orders with a negative amount left out. */
const ORDERS_VIEW = `SELECT id, customer_id, amount::text, upper(note) AS note FROM sales.orders WHERE amount >= 0 ORDER BY id`;
const ORDERS_DESTINATION = `SELECT id, customer_id, amount::text, note FROM sales.orders ORDER BY id`;

const MODULE = `module.exports = (row, op) => {
  if (op !== 'r' && op !== 'c' && op !== 'u') throw new Error('unexpected op ' + op);
  if (Number(row.amount) < 0) return null;
  return { ...row, note: row.note === null ? null : row.note.toUpperCase() };
};
`;

describe("transforms: the destination's view of source tables, end to end", () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-transforms-'));
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

  async function load(s: Client): Promise<void> {
    await s.query(`CREATE SCHEMA sales;
      CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL, email varchar(80) NOT NULL,
        phone text, country text NOT NULL, internal_note text, score int);
      CREATE INDEX customers_name ON sales.customers (name);
      CREATE INDEX customers_note ON sales.customers (internal_note);
      INSERT INTO sales.customers
        SELECT i, 'name ' || i, 'user' || i || '@example.com', CASE WHEN i % 3 = 0 THEN NULL ELSE '+49 ' || i END,
               CASE WHEN i % 7 = 0 THEN 'XX' ELSE (ARRAY['de', 'fr', 'nl'])[1 + i % 3] END, 'secret ' || i, i % 100
          FROM generate_series(1, 300) i;
      CREATE TABLE sales.orders (id int PRIMARY KEY, customer_id int NOT NULL, amount numeric(10, 2) NOT NULL, note text);
      INSERT INTO sales.orders SELECT i, 1 + i % 300, CASE WHEN i % 11 = 0 THEN -i ELSE i END, 'order ' || i
          FROM generate_series(1, 200) i;
      -- Every change carries the whole row (the precheck alerts otherwise: docs/transforms.md).
      ALTER TABLE sales.customers REPLICA IDENTITY FULL;
      ALTER TABLE sales.orders REPLICA IDENTITY FULL;`);
  }

  /** Moves rows in and out of the filter, updates masked columns, deletes kept and filtered rows. */
  async function workload(s: Client): Promise<void> {
    await s.query(`UPDATE sales.customers SET country = 'XX' WHERE id % 10 = 1`); // out
    await s.query(`UPDATE sales.customers SET country = 'fr' WHERE id % 14 = 0`); // in (were XX)
    await s.query(
      `UPDATE sales.customers SET email = 'changed' || id || '@example.org', phone = NULL WHERE id % 5 = 2`,
    );
    await s.query(`UPDATE sales.customers SET phone = '+33 ' || id WHERE id % 9 = 0`);
    await s.query(`DELETE FROM sales.customers WHERE id % 25 = 0`); // some kept, some filtered (id 175)
    await s.query(`INSERT INTO sales.customers
      SELECT i, 'new ' || i, 'new' || i || '@example.com', NULL, CASE WHEN i % 2 = 0 THEN 'XX' ELSE 'be' END, 'n', 1
        FROM generate_series(301, 340) i`);
    await s.query(
      `UPDATE sales.customers SET name = 'renamed ' || id, internal_note = 'x' WHERE id % 13 = 0`,
    );
    await s.query(`UPDATE sales.orders SET amount = -1 WHERE id % 17 = 0`); // leaves the module's view
    await s.query(`UPDATE sales.orders SET amount = 5, note = 'back' WHERE id % 22 = 0`); // enters it
    await s.query(
      `INSERT INTO sales.orders SELECT i, 1, CASE WHEN i % 2 = 0 THEN -1 ELSE 1 END, 'late' FROM generate_series(201, 220) i`,
    );
    await s.query(`DELETE FROM sales.orders WHERE id % 33 = 0`);
  }

  /** The topics hold the source's rows: a replay into a fresh database applies the view to them again. */
  async function replayEqualsView(name: string, s: Client, customers: unknown[]): Promise<void> {
    await destination.createDatabase(`${name}_replay`);
    const replayed = captureOutput();
    const replay = await runReplayCommand({
      from: name,
      workDir: join(dir, name),
      kafka: process.env.KAFKA_BROKERS,
      schemaRegistry: process.env.SCHEMA_REGISTRY_URL,
      target: destination.url(`${name}_replay`),
      out: replayed.out,
    });
    expect({ replay, out: replay ? replayed.text() : '' }).toEqual({ replay: 0, out: '' });
    const r = await destination.connect(`${name}_replay`);
    expect((await r.query(CUSTOMERS_DESTINATION)).rows).toEqual(customers);
    expect((await r.query(ORDERS_DESTINATION)).rows).toEqual((await s.query(ORDERS_VIEW)).rows);
    await r.end();
  }

  it.each(['per-key', 'transactional'] as const)(
    'consistency %s: snapshot and stream through drop, rename, mask sha256 and redact, add, filter and a module: the destination equals the same SELECT on the source; verify and cutover compare through it',
    async (consistency) => {
      const name = consistency === 'per-key' ? 'tperkey' : 'ttx';
      await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
      const s = await source.connect(name);
      const d = await destination.connect(name);
      await load(s);
      const moduleFile = join(dir, `${name}-orders.js`);
      writeFileSync(moduleFile, MODULE);
      const spec = join(dir, `${name}.json`);
      writeFileSync(
        spec,
        JSON.stringify({
          name,
          source: { url: source.url(name) },
          destination: { url: destination.url(name) },
          migrationTypes: { incremental: true },
          objects: { include: [{ schema: 'sales' }] },
          transforms: [
            {
              table: 'sales.customers',
              drop: ['internal_note'],
              rename: { name: 'full_name' },
              mask: { email: 'sha256', phone: 'redact' },
              add: { country_code: 'upper(country)' },
              filter: "country <> 'XX'",
            },
            { table: 'sales.orders', module: moduleFile },
          ],
          options: { consistency, retry: { otherMinutes: 2 } },
        }),
      );
      const out = captureOutput();
      // Per-key through the child processes, transactional in-process: both load the module.
      const migration = runMigrate({
        spec,
        workDir: join(dir, name),
        inProcess: consistency === 'transactional',
        out: out.out,
      });
      migration.catch(() => undefined);
      await waitFor(
        async () =>
          (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
          (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
        { reason: 'the incremental phase to start', until: (v) => v === 'running', timeout: 120_000 },
      );
      // The snapshot, through the view.
      expect((await d.query(CUSTOMERS_DESTINATION)).rows).toEqual((await s.query(CUSTOMERS_VIEW)).rows);
      expect((await d.query(ORDERS_DESTINATION)).rows).toEqual((await s.query(ORDERS_VIEW)).rows);
      await workload(s);
      const cut = captureOutput();
      const code = await runCutover({ spec, timeout: 120 }, cut.out);
      expect({ code, out: code ? cut.text() : '' }).toEqual({ code: 0, out: '' });
      const done = await migration;
      expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
      // Cutover's verify compared the source through the same view.
      expect(out.text()).toContain('compared through transforms sales.customers');
      expect(out.text()).toContain('skipped   "sales"."orders"');

      const want = (await s.query(CUSTOMERS_VIEW)).rows;
      expect(want.length).toBeGreaterThan(200);
      expect((await d.query(CUSTOMERS_DESTINATION)).rows).toEqual(want);
      expect((await d.query(ORDERS_DESTINATION)).rows).toEqual((await s.query(ORDERS_VIEW)).rows);
      // The destination's shape: dropped column and its index gone, renamed and added columns there.
      const columns = await d.query(
        `SELECT column_name, data_type FROM information_schema.columns
        WHERE table_schema = 'sales' AND table_name = 'customers' ORDER BY ordinal_position`,
      );
      expect(columns.rows).toEqual([
        { column_name: 'id', data_type: 'integer' },
        { column_name: 'full_name', data_type: 'text' },
        { column_name: 'email', data_type: 'text' },
        { column_name: 'phone', data_type: 'text' },
        { column_name: 'country', data_type: 'text' },
        { column_name: 'score', data_type: 'integer' },
        { column_name: 'country_code', data_type: 'text' },
      ]);
      const indexes = await d.query(
        `SELECT indexname FROM pg_indexes WHERE schemaname = 'sales' AND tablename = 'customers' ORDER BY 1`,
      );
      expect(indexes.rows.map((r) => r.indexname)).toEqual(['customers_name', 'customers_pkey']);
      if (consistency === 'per-key') await replayEqualsView(name, s, want);
      expect(await runRelease({ spec }, captureOutput().out)).toBe(0);
      await s.end();
      await d.end();
    },
    300_000,
  );
});
