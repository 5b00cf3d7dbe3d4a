import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTaskSpec } from '@pgferry/core';
import {
  createAllTypes,
  startPostgres,
  tableDigest,
  type PgCluster,
  startTestBroker,
  type TestBroker,
} from '@pgferry/testing';
import { runFullMigration } from './phases/full-migration';
import type { MigrationEvent } from './migration-event';

const SOURCE_DDL = `
  CREATE SCHEMA "Sales Dept";
  CREATE TYPE "Sales Dept".status AS ENUM ('new', 'paid', 'shipped');
  CREATE DOMAIN "Sales Dept".qty AS integer CHECK (VALUE > 0);
  CREATE TABLE "Sales Dept".customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, "E-mail" text UNIQUE);
  CREATE TABLE "Sales Dept"."Order ""Lines""" (order_id int, line int, customer_id bigint REFERENCES "Sales Dept".customers, qty "Sales Dept".qty, state "Sales Dept".status DEFAULT 'new',
    amount numeric(12,2), note text, total numeric GENERATED ALWAYS AS (amount * qty) STORED, PRIMARY KEY (order_id, line));
  CREATE INDEX ON "Sales Dept"."Order ""Lines""" (customer_id);
  CREATE TABLE public.events (id int, at timestamptz, payload jsonb, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
  CREATE TABLE public.audit (happened timestamptz DEFAULT now(), what text);
  ALTER TABLE public.audit REPLICA IDENTITY FULL;
  CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.audit(what) VALUES (TG_OP); RETURN NEW; END $$;
  CREATE TRIGGER customers_audit AFTER INSERT ON "Sales Dept".customers FOR EACH ROW EXECUTE FUNCTION public.touch();
  CREATE VIEW "Sales Dept".big_orders AS SELECT * FROM "Sales Dept"."Order ""Lines""" WHERE amount > 100;
  CREATE SEQUENCE public.invoice_no START 1000;
  INSERT INTO "Sales Dept".customers (name, "E-mail") SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
  INSERT INTO "Sales Dept"."Order ""Lines""" (order_id, line, customer_id, qty, state, amount, note)
    SELECT g / 3, g % 3, 1 + g % 2000, 1 + g % 5, (ARRAY['new','paid','shipped'])[1 + g % 3]::"Sales Dept".status, (g * 1.25)::numeric(12,2), CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\\t' || g END
      FROM generate_series(1, 30000) g;
  INSERT INTO public.events SELECT g, timestamptz '2024-06-01 00:00+00' + g * interval '1 hour', jsonb_build_object('n', g) FROM generate_series(1, 9000) g;`;

describe('full migration: schema, snapshot through Kafka, post-data', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let kafka: TestBroker;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-full-'));
  beforeAll(async () => {
    [source, destination, kafka] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
  });
  afterAll(async () => {
    await kafka?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves a multi-schema database with every type exactly, objects included', async () => {
    const s = await source.connect('shop');
    await s.query(SOURCE_DDL);
    await createAllTypes(s, 'types', 'all_types');
    await s.query('ANALYZE');
    const spec = parseTaskSpec({
      name: 'full_test',
      source: { url: source.url('shop') },
      destination: { url: destination.url('shop') },
      options: { chunkRows: 5000, snapshotWorkers: 2 },
    });
    const events: MigrationEvent[] = [];
    const client = { brokers: kafka.brokers, clientId: 'full-migration-test' };
    const result = await runFullMigration({
      spec,
      kafka: client,
      registryUrl: kafka.registryUrl!,
      workDir: join(dir, 'work'),
      onEvent: (e) => events.push(e),
    });
    expect(result.rowsCaptured).toBe(2000 + 30000 + 9000 + 4 + 2000);
    const d = await destination.connect('shop');
    for (const [schema, table, key] of [
      ['Sales Dept', 'customers', ['id']],
      ['Sales Dept', 'Order "Lines"', ['order_id', 'line']],
      ['public', 'events', ['id', 'at']],
      ['public', 'audit', ['happened', 'what']],
      ['types', 'all_types', ['id']],
    ] as const) {
      expect({ table, ...(await tableDigest(d, schema, table, [...key])) }).toEqual({
        table,
        ...(await tableDigest(s, schema, table, [...key])),
      });
    }
    // Post-data objects exist on the destination, and the trigger did not fire during the load.
    const objectsSql = `SELECT
      (SELECT count(*)::int FROM pg_indexes WHERE schemaname IN ('Sales Dept', 'public', 'types')) AS indexes,
      (SELECT count(*)::int FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname <> 'pg_catalog' AND n.nspname <> 'pgferry') AS constraints,
      (SELECT count(*)::int FROM pg_trigger WHERE NOT tgisinternal) AS triggers,
      (SELECT count(*)::int FROM pg_views WHERE schemaname = 'Sales Dept') AS views,
      (SELECT count(*)::int FROM pg_class WHERE relkind = 'S') AS sequences,
      (SELECT count(*)::int FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname IN ('Sales Dept', 'types') AND t.typtype IN ('e', 'd', 'c', 'r')) AS types,
      (SELECT count(*)::int FROM public.events_2025) AS partition_rows`;
    const onDestination = (await d.query(objectsSql)).rows[0];
    expect(onDestination).toEqual((await s.query(objectsSql)).rows[0]);
    expect(onDestination.triggers).toBe(1);
    expect(onDestination.indexes).toBeGreaterThanOrEqual(6);
    // The trigger did not fire during the load: audit holds only the source's rows.
    expect((await d.query('SELECT count(*)::int AS n FROM public.audit')).rows[0].n).toBe(2000);
    const phases = events
      .filter((e) => e.kind === 'phase' && e.status === 'done')
      .map((e) => (e as { phase: string }).phase);
    expect(phases).toEqual(['schema-pre', 'full-data', 'schema-post']);
    // Sequences continue where the source's are: the identity column's was called 2000 times,
    // the loose sequence never (its next value is still its start).
    const seqSql = `SELECT (SELECT last_value FROM "Sales Dept".customers_id_seq)::int AS customers,
      (SELECT is_called FROM "Sales Dept".customers_id_seq) AS called, (SELECT nextval('public.invoice_no'))::int AS invoice`;
    expect((await d.query(seqSql)).rows[0]).toEqual({ customers: 2000, called: true, invoice: 1000 });
    expect(result.sequences?.synced.map((q) => `${q.targetSchema}.${q.targetName}`).sort()).toEqual([
      'Sales Dept.customers_id_seq',
      'public.invoice_no',
    ]);
    // A full-only task leaves no slot behind.
    expect((await s.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).rows[0].n).toBe(0);
    // Running it again resumes: every phase is already done, nothing is copied twice.
    const again: MigrationEvent[] = [];
    await runFullMigration({
      spec,
      kafka: client,
      registryUrl: kafka.registryUrl!,
      workDir: join(dir, 'work'),
      onEvent: (e) => again.push(e),
    });
    expect(again.filter((e) => e.kind === 'phase').map((e) => (e as { status: string }).status)).toEqual([
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(await tableDigest(d, 'types', 'all_types', ['id'])).toEqual(
      await tableDigest(s, 'types', 'all_types', ['id']),
    );
    await s.end();
    await d.end();
  });

  it('a full-only task that fails leaves no replication slot on the source', async () => {
    await source.createDatabase('refused');
    await destination.createDatabase('refused');
    const s = await source.connect('refused');
    const d = await destination.connect('refused');
    await s.query(`CREATE TABLE public.items (id int PRIMARY KEY, qty int NOT NULL);
      INSERT INTO public.items SELECT g, g FROM generate_series(1, 3000) g`);
    // The destination's own table refuses the rows: the applier stops the task (strict).
    await d.query('CREATE TABLE public.items (id int PRIMARY KEY, qty int NOT NULL CHECK (qty < 0))');
    const spec = parseTaskSpec({
      name: 'full_refused',
      source: { url: source.url('refused') },
      destination: { url: destination.url('refused') },
      migrationTypes: { schema: false, full: true },
    });
    const failed = await runFullMigration({
      spec,
      kafka: { brokers: kafka.brokers, clientId: 'full-refused-test' },
      registryUrl: kafka.registryUrl!,
      workDir: join(dir, 'refused'),
    }).catch((e: Error) => e);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toMatch(/items_qty_check/);
    expect((await s.query(`SELECT slot_name FROM pg_replication_slots`)).rows).toEqual([]);
    await s.end();
    await d.end();
  });
});
