import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { TransientError } from '@pgferry/core';
import { startPostgres, waitFor, type PgCluster, startTestBroker, type TestBroker } from '@pgferry/testing';
import { ControlStore, ensureControlSchema, readOffsets } from '@pgferry/control';
import type { ColumnInfo } from '@pgferry/pg';
import { RegistryClient, buildSchemas, TableEncoder, AvroCopyDecoder, column } from '@pgferry/avro';
import { KafkaProducer, withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import { SnapshotApplier, type ApplierOptions } from './snapshot-applier';
import { hasUniqueIndexOn } from './pg-apply-session';

const col = (name: string, baseType: string, keyPosition = 0): ColumnInfo =>
  column(name, baseType, { notNull: keyPosition > 0, keyPosition });

describe('SnapshotApplier, exclusive: its own fetches, several lanes', () => {
  const config = (): KafkaClientConfig => ({ brokers: broker.brokers, clientId: 'snapshot-applier-test' });
  const topic = 'pgferry.public.accounts';
  const group = 'pgferry-snap';
  const target = { topic, schema: 'public', table: 'accounts', key: ['aid'] };
  const laterTopic = 'pgferry.public.later';
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-snapshot-applier-'));
  let pg: PgCluster;
  let db: Client;
  let broker: TestBroker;
  let kafka: Kafka;
  let registry: RegistryClient;
  let encoder: TableEncoder;
  let laterEncoder: TableEncoder;

  beforeAll(async () => {
    [pg, broker] = await Promise.all([startPostgres(), startTestBroker()]);
    await pg.query(`CREATE TABLE public.accounts (aid bigint PRIMARY KEY, bid int, filler text);
      CREATE TABLE public.later (aid bigint NOT NULL, bid int, filler text)`);
    db = await pg.connect();
    await ensureControlSchema(db);
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    registry = new RegistryClient(broker.registryUrl!);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: 3 },
        { topic: laterTopic, numPartitions: 3 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const columns = [col('aid', 'int8', 1), col('bid', 'int4'), col('filler', 'text')];
    const schemas = buildSchemas('pgferry', 'public', 'accounts', columns);
    const ids = {
      key: await registry.register(`${topic}-key`, schemas.key!),
      value: await registry.register(`${topic}-value`, schemas.value),
    };
    encoder = new TableEncoder(columns, schemas, ids, {
      name: 'pgferry',
      db: 'src',
      schema: 'public',
      table: 'accounts',
    });
    const laterSchemas = buildSchemas('pgferry', 'public', 'later', columns);
    laterEncoder = new TableEncoder(
      columns,
      laterSchemas,
      {
        key: await registry.register(`${laterTopic}-key`, laterSchemas.key!),
        value: await registry.register(`${laterTopic}-value`, laterSchemas.value),
      },
      { name: 'pgferry', db: 'src', schema: 'public', table: 'later' },
    );
  });
  afterAll(async () => {
    await db?.end();
    await Promise.all([pg?.stop(), broker?.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function produce(from: number, to: number, into = topic, filler = 'row'): Promise<void> {
    const publisher = new KafkaProducer(config(), { maxBatchBytes: 8192 });
    await publisher.connect();
    const enc = into === topic ? encoder : laterEncoder;
    try {
      const messages = [];
      for (let i = from; i <= to; i++)
        messages.push(
          enc.encodeRead(Buffer.from(`${i}\t${i % 7}\t${filler}\\t${i}`), 1_700_000_000_000, false),
        );
      await publisher.publish(into, messages);
    } finally {
      await publisher.close();
    }
  }

  /** An exclusive applier on three lanes; `stop` also ends its first connection. */
  async function startApplier(
    extra: Partial<ApplierOptions> = {},
  ): Promise<{ applier: SnapshotApplier; stop: () => Promise<void> }> {
    const destination = await pg.connect();
    const applier = new SnapshotApplier({
      kafka: config(),
      registry,
      destination,
      connect: () => pg.connect(),
      concurrency: 3,
      group,
      targets: [target],
      ...extra,
    });
    const stop = async () => {
      await applier.stop();
      await destination.end();
    };
    try {
      await applier.start();
    } catch (err) {
      await stop();
      throw err;
    }
    return { applier, stop };
  }

  async function caughtUp(applier: SnapshotApplier, topics = [topic]): Promise<void> {
    const ends = await withKafkaAdmin(config(), (a) => a.topicEnds(topics));
    await waitFor(
      () => {
        if (applier.error) throw applier.error;
        return [...ends].every(([k, high]) => (applier.positions.get(k) ?? 0n) >= high);
      },
      { timeout: 30_000, reason: `the applier reaches the ends of ${topics.join(', ')}` },
    );
  }

  it('applies each row once, stores the offsets with them, resumes from them, and refuses a second applier', async () => {
    await produce(1, 3000);
    // The destination has the source's column types: every batch goes as COPY binary.
    const text = jest.spyOn(AvroCopyDecoder.prototype, 'decodeRange');
    const first = await startApplier();
    try {
      await caughtUp(first.applier);
      expect(text).not.toHaveBeenCalled();
    } finally {
      text.mockRestore();
      await first.stop();
    }
    expect((await pg.query(`SELECT count(*)::int AS n FROM public.accounts`))[0].n).toBe(3000);
    expect(await readOffsets(db, group, [topic])).toEqual(
      await withKafkaAdmin(config(), (a) => a.topicEnds([topic])),
    );

    // A change made after the rows were applied stays: a resumed applier does not apply them again.
    await pg.query(`UPDATE public.accounts SET filler = 'kept' WHERE aid IN (1, 2, 3)`);
    await produce(3001, 5000);
    const second = await startApplier();
    try {
      await expect(startApplier()).rejects.toThrow(
        new TransientError(
          `another snapshot applier of consumer group ${group} is connected to the destination (it holds advisory lock 1885824626/hashtext(group)); stop it, or wait until its connection ends`,
        ),
      );
      await caughtUp(second.applier);
    } finally {
      await second.stop();
    }
    const rows = await pg.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE filler = 'kept')::int AS kept,
              count(*) FILTER (WHERE filler = E'row\\t' || aid)::int AS exact FROM public.accounts`,
    );
    expect(rows[0]).toEqual({ n: 5000, kept: 3, exact: 4997 });
    expect(await readOffsets(db, group, [topic])).toEqual(
      await withKafkaAdmin(config(), (a) => a.topicEnds([topic])),
    );
  });

  it('loads a table whose key is deferred without it, and builds the key before a chunk sent again', async () => {
    const store = new ControlStore(db, 'later');
    await store.registerTask({ name: 'later' });
    await store.storePlan([{ id: 'c1', sourceTable: '"src"."later"', plan: {} }]);
    const deferredKeys = {
      task: 'later',
      keys: [
        {
          target: '"public"."later"',
          key: ['aid'],
          sourceTable: '"src"."later"',
          sql: 'ALTER TABLE "public"."later" ADD CONSTRAINT later_pkey PRIMARY KEY (aid)',
        },
      ],
    };
    const laterTarget = { topic: laterTopic, schema: 'public', table: 'later', key: ['aid'] };
    const applier = await startApplier({ group: 'pgferry-later', targets: [laterTarget], deferredKeys });
    try {
      // The first attempt of the chunk sends part of its rows, then the capture dies.
      await store.beginChunk('c1');
      await produce(1, 2000, laterTopic);
      await caughtUp(applier.applier, [laterTopic]);
      expect(await hasUniqueIndexOn(db, '"public"."later"', ['aid'])).toBe(false);
      // Its successor begins the chunk again and sends all of it.
      await store.beginChunk('c1');
      await produce(1, 3000, laterTopic, 'again');
      await caughtUp(applier.applier, [laterTopic]);
    } finally {
      await applier.stop();
    }
    expect(await hasUniqueIndexOn(db, '"public"."later"', ['aid'])).toBe(true);
    const rows = await pg.query(
      `SELECT count(*)::int AS n, count(DISTINCT aid)::int AS keys,
              count(*) FILTER (WHERE filler = E'again\\t' || aid)::int AS exact FROM public.later`,
    );
    expect(rows[0]).toEqual({ n: 3000, keys: 3000, exact: 3000 });
  });

  it('copies in binary into columns of the source types, and in text into a column of another type', async () => {
    const binary = jest.spyOn(AvroCopyDecoder.prototype, 'decodeBinaryRange');
    const text = jest.spyOn(AvroCopyDecoder.prototype, 'decodeRange');
    try {
      await pg.query(`CREATE TABLE public.wider (aid bigint PRIMARY KEY, bid bigint, filler text)`);
      const wideTopic = 'pgferry.public.wider';
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: wideTopic, numPartitions: 1 }], waitForLeaders: true });
      await admin.disconnect();
      const columns = [col('aid', 'int8', 1), col('bid', 'int4'), col('filler', 'text')];
      const schemas = buildSchemas('pgferry', 'public', 'wider', columns);
      const enc = new TableEncoder(
        columns,
        schemas,
        {
          key: await registry.register(`${wideTopic}-key`, schemas.key!),
          value: await registry.register(`${wideTopic}-value`, schemas.value),
        },
        { name: 'pgferry', db: 'src', schema: 'public', table: 'wider' },
      );
      const publisher = new KafkaProducer(config(), { maxBatchBytes: 8192 });
      await publisher.connect();
      try {
        const messages = [];
        for (let i = 1; i <= 500; i++)
          messages.push(enc.encodeRead(Buffer.from(`${i}\t${-i}\tw\\t${i}`), 1_700_000_000_000, false));
        await publisher.publish(wideTopic, messages);
      } finally {
        await publisher.close();
      }
      const wideTarget = { topic: wideTopic, schema: 'public', table: 'wider', key: ['aid'] };
      const applier = await startApplier({ group: 'pgferry-wider', targets: [wideTarget] });
      try {
        await caughtUp(applier.applier, [wideTopic]);
      } finally {
        await applier.stop();
      }
      const rows = await pg.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE bid = -aid AND filler = E'w\t' || aid)::int AS exact FROM public.wider`,
      );
      expect(rows[0]).toEqual({ n: 500, exact: 500 });
      expect(binary).not.toHaveBeenCalled();
      expect(text).toHaveBeenCalledTimes(500);
    } finally {
      binary.mockRestore();
      text.mockRestore();
    }
  });
});
