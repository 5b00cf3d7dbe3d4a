import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { Kafka, logLevel } from 'kafkajs';
import { TransientError } from '@pgferry/core';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import { startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { ensureControlSchema, readOffsets } from '../control/control-store';
import type { ColumnInfo } from '../codec/pg-columns';
import { RegistryClient } from '../codec/registry-client';
import { buildSchemas, TableEncoder } from '../codec/table-codec';
import { KafkaPublisher } from '../publish/kafka-publisher';
import { topicEnds } from '../topics';
import { SnapshotApplier } from './snapshot-applier';

const col = (name: string, baseType: string, keyPosition = 0): ColumnInfo => ({
  name,
  type: baseType,
  baseType,
  precision: null,
  scale: null,
  notNull: keyPosition > 0,
  keyPosition,
});

describe('SnapshotApplier, exclusive: its own fetches, several lanes', () => {
  const topic = 'pgferry.public.accounts';
  const group = 'pgferry-snap';
  const target = { topic, schema: 'public', table: 'accounts', key: ['aid'] };
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-snapshot-applier-'));
  let pg: PgCluster;
  let db: Client;
  let broker: EmbeddedKafka;
  let kafka: Kafka;
  let registry: RegistryClient;
  let encoder: TableEncoder;

  beforeAll(async () => {
    [pg, broker] = await Promise.all([
      startPostgres(),
      startEmbeddedKafka({ dataDir, port: 0, registryPort: 0 }),
    ]);
    await pg.query(`CREATE TABLE public.accounts (aid bigint PRIMARY KEY, bid int, filler text)`);
    db = await pg.connect();
    await ensureControlSchema(db);
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    registry = new RegistryClient(broker.registryUrl!);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
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
  });
  afterAll(async () => {
    await db?.end();
    await Promise.all([pg?.stop(), broker?.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function produce(from: number, to: number): Promise<void> {
    const publisher = new KafkaPublisher(kafka, { maxBatchBytes: 8192 });
    await publisher.connect();
    try {
      const messages = [];
      for (let i = from; i <= to; i++)
        messages.push(
          encoder.encodeRead(Buffer.from(`${i}\t${i % 7}\trow\\t${i}`), 1_700_000_000_000, false),
        );
      await publisher.publish(topic, messages);
    } finally {
      await publisher.close();
    }
  }

  /** An exclusive applier on three lanes; `stop` also ends its first connection. */
  async function startApplier(): Promise<{ applier: SnapshotApplier; stop: () => Promise<void> }> {
    const destination = await pg.connect();
    const applier = new SnapshotApplier({
      kafka,
      registry,
      destination,
      connect: () => pg.connect(),
      concurrency: 3,
      exclusive: true,
      group,
      targets: [target],
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

  async function caughtUp(applier: SnapshotApplier): Promise<void> {
    const ends = await topicEnds(kafka, [topic]);
    await waitFor(
      () => {
        if (applier.error) throw applier.error;
        return [...ends].every(([k, high]) => (applier.positions.get(k) ?? 0n) >= high);
      },
      { timeout: 30_000, reason: `the applier reaches the ends of ${topic}` },
    );
  }

  it('applies each row once, stores the offsets with them, resumes from them, and refuses a second applier', async () => {
    await produce(1, 3000);
    const first = await startApplier();
    try {
      await caughtUp(first.applier);
    } finally {
      await first.stop();
    }
    expect((await pg.query(`SELECT count(*)::int AS n FROM public.accounts`))[0].n).toBe(3000);
    expect(await readOffsets(db, group, [topic])).toEqual(await topicEnds(kafka, [topic]));

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
    expect(await readOffsets(db, group, [topic])).toEqual(await topicEnds(kafka, [topic]));
  });
});
