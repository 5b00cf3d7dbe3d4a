import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { connect, type Endpoint, PIPELINE_SESSION_SQL, parseLsn } from '@pgferry/pg';
import {
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
  startTestBroker,
  type TestBroker,
} from '@pgferry/testing';
import { RegistryClient } from '@pgferry/avro';
import { ControlStore, ensureControlSchema, recordStartOffsets, startRun } from '@pgferry/control';
import { PerKeyApplier } from '@pgferry/apply';
import { KafkaProducer, withKafkaAdmin } from '@pgferry/kafka';
import { ChangePublisher, ensurePublication, PgStreamReader, seenIdentity } from '@pgferry/capture';

const DDL = `
  CREATE TABLE public."Orders" (id int PRIMARY KEY, note text, doc text, qty int NOT NULL);
  ALTER TABLE public."Orders" ALTER COLUMN doc SET STORAGE EXTERNAL;
  CREATE TABLE public.history (at timestamptz, what jsonb);
  ALTER TABLE public.history REPLICA IDENTITY FULL;`;

describe('incremental path: slot -> change records on Kafka -> applier -> destination', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let broker: TestBroker;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-cdc-e2e-'));
  beforeAll(async () => {
    [source, destination, broker] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
    await Promise.all([source.query(DDL), destination.query(DDL)]);
  });
  afterAll(async () => {
    await broker?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('carries inserts, updates (unchanged TOAST, key change), deletes, truncate and a keyless table exactly', async () => {
    const endpoint: Endpoint = {
      host: source.host,
      port: source.port,
      database: 'postgres',
      user: source.user,
      password: source.password,
      ssl: { mode: 'disable' },
    };
    const src = await connect(endpoint, 'source');
    await src.query(PIPELINE_SESSION_SQL);
    await ensurePublication(src, 'e2e', [
      { schema: 'public', table: 'Orders' },
      { schema: 'public', table: 'history' },
    ]);
    const [{ lsn }] = (
      await src.query(`SELECT lsn::text FROM pg_create_logical_replication_slot('pgferry_e2e', 'pgoutput')`)
    ).rows;

    const big = 'y'.repeat(6000);
    await source.query(`INSERT INTO "Orders" SELECT g, 'n' || g, $1 || g, g FROM generate_series(1, 500) g`, [
      big,
    ]);
    await source.query(`UPDATE "Orders" SET qty = qty + 1 WHERE id <= 100`); // doc unchanged: TOAST not sent
    // Key changes: the old key's partition gets a delete, the new key's the row (its TOASTed
    // column rewritten, so it is sent: see the move limitation in docs/records.md).
    await source.query(`UPDATE "Orders" SET id = id + 1000, doc = doc || '' WHERE id BETWEEN 101 AND 110`);
    await source.query(`DELETE FROM "Orders" WHERE id BETWEEN 200 AND 249`);
    await source.query(
      `INSERT INTO history SELECT timestamptz '2024-01-01 00:00+00' + g * interval '1 day', jsonb_build_object('g', g) FROM generate_series(1, 20) g`,
    );
    await source.query(
      `UPDATE history SET what = '{"changed": 1}' WHERE what->>'g' = '3'; DELETE FROM history WHERE what->>'g' = '4'`,
    );
    await source.query(
      `TRUNCATE history; INSERT INTO history VALUES ('2025-01-01', '{"after": "truncate"}')`,
    );
    await source.query(`BEGIN; INSERT INTO "Orders" VALUES (9000, 'rolled back', NULL, 1); ROLLBACK`);
    const [{ end }] = await source.query<{ end: string }>(`SELECT pg_current_wal_lsn()::text AS end`);

    const prefix = 'e2e';
    const partitions = 2;
    const tables = [
      { schema: 'public', table: 'Orders', topic: `${prefix}.public.Orders`, key: ['id'] },
      { schema: 'public', table: 'history', topic: `${prefix}.public.history`, key: [] },
    ];
    const kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: tables.map((t) => ({ topic: t.topic, numPartitions: partitions })) });
    await admin.disconnect();
    const config = { brokers: broker.brokers, clientId: 'cdc-end-to-end-test' };
    const producer = new KafkaProducer(config);
    await producer.connect();
    const registry = new RegistryClient(broker.registryUrl!);
    // The task's run, as the controller records it: identity, then the topics' start offsets.
    const d = await destination.connect();
    await ensureControlSchema(d);
    await new ControlStore(d, 'e2e').registerTask({});
    const run = await startRun(d, 'e2e', '0e2e0e2e0e2e0e2e', await seenIdentity(src, config));
    const starts = await withKafkaAdmin(config, (a) => a.topicEnds(tables.map((t) => t.topic)));
    await recordStartOffsets(d, 'e2e', 'e2e-applier', starts);
    await d.end();
    let confirmed = 0n;
    const reader = new PgStreamReader({
      endpoint,
      slot: 'pgferry_e2e',
      publication: 'pgferry_e2e',
      startLsn: parseLsn(lsn),
    });
    const publisher = new ChangePublisher({
      runId: run.runId,
      producer,
      registry,
      source: src,
      prefix,
      sourceDb: 'postgres',
      partitions,
      tables,
      confirm: (l) => {
        confirmed = l > confirmed ? l : confirmed;
        reader.confirm(l);
      },
    });
    let streamError: unknown = null;
    const streaming = reader.run(publisher).catch((err) => (streamError = err));
    const applier = new PerKeyApplier({
      kafka: config,
      registry,
      connect: () => destination.connect(),
      group: 'e2e-applier',
      task: 'e2e',
      targets: tables.map((t) => ({ topic: t.topic, schema: t.schema, table: t.table, key: t.key })),
      membership: 'group',
      sessionTimeoutMs: 6000,
    });
    try {
      await waitFor(
        () => {
          if (streamError) throw streamError;
          return confirmed;
        },
        {
          reason: 'the capture to confirm past the last change',
          until: (c) => c >= parseLsn(end),
          timeout: 60_000,
        },
      );
      await applier.start();
      const ends = new Map<string, bigint>();
      const a2 = kafka.admin();
      await a2.connect();
      for (const t of tables)
        for (const o of await a2.fetchTopicOffsets(t.topic))
          ends.set(`${t.topic}:${o.partition}`, BigInt(o.high));
      await a2.disconnect();
      await waitFor(
        () => {
          if (applier.error) throw applier.error;
          return [...ends].every(([k, high]) => (applier.positions.get(k) ?? 0n) >= high);
        },
        { reason: 'the applier to reach the end of the topics', timeout: 60_000 },
      );
    } finally {
      await applier.stop();
      await reader.stop();
      await streaming.catch(() => undefined);
      await producer.close();
    }
    const s = await source.connect();
    const t = await destination.connect();
    try {
      for (const [table, key] of [
        ['Orders', ['id']],
        ['history', ['at', 'what']],
      ] as const) {
        const [a, b] = await Promise.all([
          tableDigest(s, 'public', table, [...key]),
          tableDigest(t, 'public', table, [...key]),
        ]);
        expect({ table, ...b }).toEqual({ table, ...a });
      }
      expect(
        (await t.query(`SELECT count(*)::int AS n FROM "Orders" WHERE length(doc) = 6000 + length(id::text)`))
          .rows[0].n,
      ).toBe(440);
      // The slot is confirmed exactly as far as Kafka acknowledged.
      const [{ c }] = (
        await s.query(
          `SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = 'pgferry_e2e'`,
        )
      ).rows;
      expect(parseLsn(c)).toBeGreaterThanOrEqual(parseLsn(end) - 1n);
    } finally {
      await s.end();
      await t.end();
      await src.query(`SELECT pg_drop_replication_slot('pgferry_e2e')`).catch(() => undefined);
      await src.end();
    }
  });
});
