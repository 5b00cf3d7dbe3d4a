import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import {
  startPostgres,
  startUntilFailure,
  waitFor,
  type PgCluster,
  startTestBroker,
  type TestBroker,
} from '@pgferry/testing';
import { ChangeEncoder, RegistryClient, buildSchemas } from '@pgferry/avro';
import { describeColumns } from '@pgferry/pg';
import { ensureControlSchema } from '@pgferry/control';
import { DataError } from '@pgferry/core';
import { KafkaPartitionFetcher } from '@pgferry/kafka';
import { forEachRecordView, recordHeaders } from '@pgferry/kafka-protocol';
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
    await startUntilFailure(strict, 'the strict applier to fail');
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

  it('stops at a record whose Avro value does not decode, naming topic, partition and offset, or parks it in the dead-letter topic and goes on', async () => {
    const poisonTopic = 'pre.shop.poison';
    const dlq = 'pre.poison.dlq';
    await pg.query(`CREATE TABLE shop."Poison" (id int PRIMARY KEY, name text NOT NULL)`);
    const client = await pg.connect();
    const columns = await describeColumns(client, 'shop', 'Poison', ['id']);
    await client.end();
    const registry = new RegistryClient(broker.registryUrl!);
    const schemas = buildSchemas('pre', 'shop', 'Poison', columns);
    const ids = {
      key: await registry.register(`${poisonTopic}-key`, schemas.key!),
      value: await registry.register(`${poisonTopic}-value`, schemas.value),
    };
    const poison = new ChangeEncoder(columns, schemas, ids, {
      name: 'pre',
      db: 'postgres',
      schema: 'shop',
      table: 'Poison',
    });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: poisonTopic, numPartitions: 1 },
        { topic: dlq, numPartitions: 1 },
      ],
    });
    await admin.disconnect();
    const good = (id: number) => poison.encode('c', null, [String(id), `row ${id}`], [], meta());
    const sendPoison = (...records: Array<{ key: Buffer | null; value: Buffer | null }>) =>
      producer.send({ topic: poisonTopic, acks: -1, messages: records });
    // The right Confluent header (magic byte, the value schema's id) over a body cut short, and
    // over bytes that are no Avro envelope at all.
    const whole = good(3).value;
    const truncated = { key: good(3).key, value: whole.subarray(0, whole.length - 10) };
    const garbage = {
      key: good(6).key,
      value: Buffer.concat([whole.subarray(0, 5), Buffer.from('not avro')]),
    };
    const target = { topic: poisonTopic, schema: 'shop', table: 'Poison', key: ['id'] };
    const applied = async () =>
      (await pg.query<{ id: number }>(`SELECT id FROM shop."Poison" ORDER BY id`)).map((r) => r.id);
    const committed = async () => {
      const got = await pg.query<{ n: string }>(
        `SELECT next_offset::text AS n FROM pgferry.offsets WHERE consumer_group = 'gp' AND topic = $1`,
        [poisonTopic],
      );
      return got.length ? BigInt(got[0].n) : null;
    };
    const reached = (a: PerKeyApplier, next: bigint) =>
      waitFor(
        () => {
          if (a.error) throw a.error;
          return (a.positions.get(`${poisonTopic}:0`) ?? 0n) >= next;
        },
        { reason: `the applier to apply ${poisonTopic} up to offset ${next}`, timeout: 30_000 },
      );
    const undecodable = (offset: number, reason: string) =>
      `Kafka topic ${poisonTopic} partition 0 offset ${offset}: Avro value of schema ${ids.value} does not decode (${reason}): the record is corrupt, or was not written with that schema`;

    // Strict: the rows before it are applied, the applier stops at it, nothing after it goes in.
    await sendPoison(good(1), good(2));
    const strict = applier('gp', { targets: [target] });
    await strict.start();
    try {
      await reached(strict, 2n);
      await sendPoison(truncated, good(4), good(5));
      await waitFor(() => strict.error, {
        reason: 'the strict applier to fail on the undecodable record',
        until: (e) => e !== null,
        timeout: 30_000,
      });
    } finally {
      await strict.stop();
    }
    expect(strict.error).toBeInstanceOf(DataError);
    expect(strict.error!.message).toBe(
      `${undecodable(2, 'Avro length 1 at byte 78 runs past the value')}; the applier stops here (onError strict); with onError dead-letter it parks such a record in the dead-letter topic and goes on`,
    );
    expect(await applied()).toEqual([1, 2]);
    expect(await committed()).toBe(2n);

    // Dead-letter: the same group resumes at the bad record, parks it and the one between good
    // records further on, and applies the rest; its offset moves past both.
    await sendPoison(garbage, good(6));
    const parked: string[] = [];
    const lenient = applier('gp', {
      targets: [target],
      onError: 'dead-letter',
      deadLetterTopic: dlq,
      onDeadLetter: (_t, offset, reason) => parked.push(`${offset}: ${reason}`),
    });
    await lenient.start();
    await reached(lenient, 7n).finally(() => lenient.stop());
    expect(await applied()).toEqual([1, 2, 4, 5, 6]);
    expect(await committed()).toBe(7n);
    expect(lenient.deadLettered).toBe(2);
    const reasons = [
      undecodable(2, 'Avro length 1 at byte 78 runs past the value'),
      undecodable(5, 'Avro union branch byte 110 is not in the schema (0 or 2)'),
    ];
    expect(parked).toEqual([`2: ${reasons[0]}`, `5: ${reasons[1]}`]);
    const inDlq = await readTopic(broker, dlq, 2);
    expect(inDlq.map((r) => r.value)).toEqual([truncated.value, garbage.value]);
    expect(inDlq.map((r) => r.headers)).toEqual(
      [2, 5].map((offset, i) => ({
        'pgferry.reason': reasons[i],
        'pgferry.topic': poisonTopic,
        'pgferry.partition': '0',
        'pgferry.offset': String(offset),
        'pgferry.table': '"shop"."Poison"',
      })),
    );
  });
});

/** The first `n` records of partition 0 of `topic`, read without a consumer group. */
async function readTopic(broker: TestBroker, topic: string, n: number) {
  const fetcher = new KafkaPartitionFetcher(broker.client('dlq-reader'), {
    maxWaitMs: 200,
    maxBytesPerPartition: 1 << 20,
    maxBytes: 1 << 20,
  });
  const out: Array<{ value: Buffer | null; headers: Record<string, string> }> = [];
  try {
    await fetcher.connect([topic], () => 0n);
    await waitFor(
      async () => {
        for (const data of await fetcher.fetch())
          for (const b of data.batches)
            forEachRecordView(b, data.from, topic, (r) =>
              out.push({
                value: r.valueStart < 0 ? null : Buffer.from(r.buf.subarray(r.valueStart, r.valueEnd)),
                headers: Object.fromEntries(
                  recordHeaders(r).map((h) => [h.key, h.value?.toString('utf8') ?? '']),
                ),
              }),
            );
        return out.length >= n;
      },
      { reason: `${n} records on ${topic}`, timeout: 30_000 },
    );
  } finally {
    await fetcher.close();
  }
  return out;
}
