import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startPostgres, waitFor, type PgCluster, startTestBroker, type TestBroker } from '@pgferry/testing';
import { ChangeEncoder, RegistryClient, buildSchemas } from '@pgferry/avro';
import { describeColumns } from '@pgferry/pg';
import { ensureControlSchema } from '@pgferry/control';
import { PerKeyApplier } from './per-key-applier';

describe('PerKeyApplier: change records from Kafka into the destination, exactly once', () => {
  let pg: PgCluster;
  let broker: TestBroker;
  let kafka: Kafka;
  let producer: Producer;
  let encoder: ChangeEncoder;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-topic-applier-'));
  const topic = 'pre.shop.items';
  const target = { topic, schema: 'shop', table: 'Items', key: ['id'] };
  let lsn = 1000n;
  const meta = () => ({ lsn: (lsn += 10n), txId: 1, tsMs: Date.now() });

  beforeAll(async () => {
    [pg, broker] = await Promise.all([startPostgres(), startTestBroker()]);
    await pg.query(
      `CREATE SCHEMA shop; CREATE TABLE shop."Items" (id int PRIMARY KEY, name text NOT NULL, qty int CHECK (qty >= 0), doc text)`,
    );
    const client = await pg.connect();
    await ensureControlSchema(client);
    const columns = await describeColumns(client, 'shop', 'Items', ['id']);
    await client.end();
    const registry = new RegistryClient(broker.registryUrl!);
    const schemas = buildSchemas('pre', 'shop', 'Items', columns);
    const ids = {
      key: await registry.register(`${topic}-key`, schemas.key!),
      value: await registry.register(`${topic}-value`, schemas.value),
    };
    encoder = new ChangeEncoder(columns, schemas, ids, {
      name: 'pre',
      db: 'postgres',
      schema: 'shop',
      table: 'Items',
    });
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: 2 },
        { topic: 'pre.dlq', numPartitions: 1 },
      ],
    });
    await admin.disconnect();
    producer = kafka.producer({ idempotent: true });
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
    await broker?.close();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (...records: Array<{ key: Buffer | null; value: Buffer | null; partition?: number }>) =>
    producer.send({ topic, acks: -1, messages: records });

  function applier(group: string, extra: Partial<ConstructorParameters<typeof PerKeyApplier>[0]> = {}) {
    return new PerKeyApplier({
      kafka: { brokers: broker.brokers, clientId: 'per-key-applier-test' },
      registry: new RegistryClient(broker.registryUrl!),
      connect: () => pg.connect(),
      group,
      targets: [target],
      concurrency: 2,
      membership: 'group',
      sessionTimeoutMs: 6000,
      ...extra,
    });
  }

  async function end(): Promise<Map<string, bigint>> {
    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    return new Map(offsets.map((o) => [`${topic}:${o.partition}`, BigInt(o.high)]));
  }

  async function caughtUp(a: PerKeyApplier) {
    const ends = await end();
    await waitFor(
      () => {
        if (a.error) throw a.error;
        return [...ends].every(([k, high]) => (a.positions.get(k) ?? 0n) >= high);
      },
      { reason: 'the applier to reach the end of every partition', timeout: 30_000 },
    );
  }

  const rows = async () =>
    await pg.query(`SELECT id, name, qty, length(doc) AS doc FROM shop."Items" ORDER BY id`);

  it('applies inserts, updates, deletes with tombstones and a truncate on two partitions, and resumes without applying anything twice', async () => {
    const big = 'x'.repeat(4000);
    const c = (id: number, name: string, qty: number) =>
      encoder.encode('c', null, [String(id), name, String(qty), big], [], meta());
    const records = [c(1, 'one', 1), c(2, 'two', 2), c(3, 'three', 3), c(4, 'four', 4)];
    await send(...records);
    const d = encoder.encode('d', ['2', null, null, null], null, [], meta());
    await send(d, { key: d.key, value: null });
    await send(encoder.encode('u', null, ['1', 'ONE', '10', null], ['doc'], meta()));
    const first = applier('g1');
    await first.start();
    await caughtUp(first).finally(() => first.stop());
    expect(await rows()).toEqual([
      { id: 1, name: 'ONE', qty: 10, doc: 4000 },
      { id: 3, name: 'three', qty: 3, doc: 4000 },
      { id: 4, name: 'four', qty: 4, doc: 4000 },
    ]);

    // A truncate goes to every partition; then new rows. A second applier of the same group resumes.
    const t = meta();
    await send(
      { ...encoder.encodeTruncate(t), partition: 0 },
      { ...encoder.encodeTruncate(t), partition: 1 },
    );
    await send(c(5, 'five', 5), c(6, 'six', 6));
    const second = applier('g1');
    await second.start();
    await caughtUp(second).finally(() => second.stop());
    expect((await rows()).map((r) => r.id)).toEqual([5, 6]);
    const [{ n }] = await pg.query<{ n: string }>(
      `SELECT sum(next_offset)::text AS n FROM pgferry.offsets WHERE consumer_group = 'g1'`,
    );
    expect(BigInt(n)).toBe([...(await end()).values()].reduce((a, b) => a + b, 0n));
  });

  it('stops on a record the destination refuses, naming the table, or parks it in the dead-letter topic and goes on', async () => {
    await send(
      encoder.encode('c', null, ['7', 'bad', '-1', null], [], meta()),
      encoder.encode('c', null, ['8', 'good', '8', null], [], meta()),
    );
    const strict = applier('g1');
    await strict.start();
    await waitFor(() => strict.error, {
      reason: 'the strict applier to fail',
      until: (e) => e !== null,
      timeout: 30_000,
    }).finally(() => strict.stop());
    expect(strict.error!.message).toMatch(/"shop"."Items"[\s\S]*check constraint "Items_qty_check"/);
    expect((await rows()).map((r) => r.id)).toEqual([5, 6]);

    const parked: string[] = [];
    const lenient = applier('g1', {
      onError: 'dead-letter',
      deadLetterTopic: 'pre.dlq',
      onDeadLetter: (_t, offset, reason) => parked.push(`${offset}: ${reason}`),
    });
    await lenient.start();
    await caughtUp(lenient).finally(() => lenient.stop());
    expect((await rows()).map((r) => r.id)).toEqual([5, 6, 8]);
    expect(lenient.deadLettered).toBe(1);
    expect(parked[0]).toMatch(/check constraint "Items_qty_check"/);
    const dlq = kafka.admin();
    await dlq.connect();
    const [p] = await dlq.fetchTopicOffsets('pre.dlq');
    await dlq.disconnect();
    expect(p.high).toBe('1');
  });
});
