import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import {
  startPostgres,
  startUntilFailure,
  waitFor,
  type PgCluster,
  startTestBroker,
  type TestBroker,
} from '@pgferry/testing';
import {
  ChangeEncoder,
  RegistryClient,
  buildSchemas,
  STREAM_POSITION_HEADER,
  streamPosition,
  TransactionRecords,
  transactionId,
} from '@pgferry/avro';
import { describeColumns } from '@pgferry/pg';
import { ensureControlSchema, storeOffset } from '@pgferry/control';
import { TransactionalApplier, type TransactionalApplierOptions } from './transactional-applier';

/** One record of a source transaction: its topic and partition, key and value (null: tombstone). */
interface TxRecord {
  topic: string;
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
}

describe('TransactionalApplier: whole source transactions in commit order', () => {
  let pg: PgCluster;
  let broker: TestBroker;
  let kafka: Kafka;
  let producer: Producer;
  let items: ChangeEncoder;
  let log: ChangeEncoder;
  let txRecords: TransactionRecords;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-tx-applier-'));
  const txTopic = 'pre.transactions';
  const targets = [
    { topic: 'pre.shop.Items', schema: 'shop', table: 'Items', key: ['id'] },
    { topic: 'pre.shop.log', schema: 'shop', table: 'log', key: [] },
  ];

  async function encoderFor(client: Client, table: string, key: string[]): Promise<ChangeEncoder> {
    const columns = await describeColumns(client, 'shop', table, key);
    const registry = new RegistryClient(broker.registryUrl!);
    const schemas = buildSchemas('pre', 'shop', table, columns);
    const topic = `pre.shop.${table}`;
    const ids = {
      key: schemas.key ? await registry.register(`${topic}-key`, schemas.key) : null,
      value: await registry.register(`${topic}-value`, schemas.value),
    };
    return new ChangeEncoder(columns, schemas, ids, { name: 'pre', db: 'postgres', schema: 'shop', table });
  }

  beforeAll(async () => {
    [pg, broker] = await Promise.all([startPostgres(), startTestBroker()]);
    await pg.query(`CREATE SCHEMA shop;
      CREATE TABLE shop."Items" (id int PRIMARY KEY, name text NOT NULL, qty int CHECK (qty >= 0));
      CREATE TABLE shop.log (what text)`);
    const client = await pg.connect();
    await ensureControlSchema(client);
    items = await encoderFor(client, 'Items', ['id']);
    log = await encoderFor(client, 'log', []);
    await client.end();
    txRecords = new TransactionRecords(new RegistryClient(broker.registryUrl!), txTopic);
    await txRecords.ready();
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic: targets[0].topic, numPartitions: 2 },
        { topic: targets[1].topic, numPartitions: 1 },
        { topic: txTopic, numPartitions: 1 },
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

  const meta = (lsn: bigint) => ({ lsn, txId: Number(lsn), tsMs: Date.now() });
  const item = (op: 'c' | 'u' | 'd', lsn: bigint, before: string[] | null, after: string[] | null) => {
    const r = items.encode(op, before, after, [], meta(lsn));
    return { key: r.key, value: r.value };
  };
  const logged = (lsn: bigint, what: string): TxRecord => ({
    topic: targets[1].topic,
    partition: 0,
    ...log.encode('c', null, [what], [], meta(lsn)),
  });
  const on = (partition: number, r: { key: Buffer | null; value: Buffer | null }): TxRecord => ({
    topic: targets[0].topic,
    partition,
    ...r,
  });

  /**
   * Publishes a source transaction committed at `lsn` the way the capture does: BEGIN, its
   * records, END, numbered in that order in header pgferry.pos. `upTo` sends only the first
   * records (BEGIN counts as one): a capture killed part way.
   */
  async function publish(lsn: bigint, records: TxRecord[], upTo?: number): Promise<void> {
    const id = transactionId(Number(lsn), lsn);
    const begin = txRecords.encode('BEGIN', id, Date.now());
    const end = txRecords.encode('END', id, Date.now(), new Map([['shop.x', records.length]]));
    const all = [
      { topic: txTopic, partition: 0, ...begin },
      ...records,
      { topic: txTopic, partition: 0, ...end },
    ].slice(0, upTo);
    for (const [seq, r] of all.entries())
      await producer.send({
        topic: r.topic,
        acks: -1,
        messages: [
          {
            key: r.key,
            value: r.value,
            partition: r.partition,
            headers: { [STREAM_POSITION_HEADER]: streamPosition(lsn, seq + 1) },
          },
        ],
      });
  }

  /**
   * Publishes a large source transaction committed at `lsn` (BEGIN, `records`, END, numbered in
   * that order) in produce requests of `chunk` records over every topic.
   */
  async function publishLarge(lsn: bigint, records: TxRecord[], chunk: number): Promise<void> {
    const id = transactionId(Number(lsn), lsn);
    const all: TxRecord[] = [
      { topic: txTopic, partition: 0, ...txRecords.encode('BEGIN', id, Date.now()) },
      ...records,
      { topic: txTopic, partition: 0, ...txRecords.encode('END', id, Date.now(), new Map([['shop.x', 1]])) },
    ];
    for (let from = 0; from < all.length; from += chunk) {
      const messages = all.slice(from, from + chunk).map((r, i) => ({
        topic: r.topic,
        message: {
          key: r.key,
          value: r.value,
          partition: r.partition,
          headers: { [STREAM_POSITION_HEADER]: streamPosition(lsn, from + i + 1) },
        },
      }));
      const topics = [...new Set(messages.map((m) => m.topic))];
      await producer.sendBatch({
        acks: -1,
        topicMessages: topics.map((topic) => ({
          topic,
          messages: messages.filter((m) => m.topic === topic).map((m) => m.message),
        })),
      });
    }
  }

  function applier(group: string, extra: Partial<TransactionalApplierOptions> = {}) {
    return new TransactionalApplier({
      kafka: { brokers: broker.brokers, clientId: 'transactional-applier-test' },
      registry: new RegistryClient(broker.registryUrl!),
      connect: () => pg.connect(),
      group,
      targets,
      transactionsTopic: txTopic,
      ...extra,
    });
  }

  async function reaches(a: TransactionalApplier, what: () => Promise<unknown>, want: unknown) {
    await waitFor(
      async () => {
        if (a.error) throw a.error;
        return JSON.stringify(await what());
      },
      {
        reason: `the destination to hold ${JSON.stringify(want)}`,
        until: (v) => v === JSON.stringify(want),
        timeout: 30_000,
      },
    );
  }

  const state = async () => ({
    items: await pg.query(`SELECT id, name FROM shop."Items" ORDER BY id`),
    log: (await pg.query<{ what: string }>(`SELECT what FROM shop.log ORDER BY what`)).map((r) => r.what),
  });

  it('takes records by number across partitions and topics, skips a transaction sent again after a capture restart, and resumes after a stop without applying anything twice', async () => {
    // T1: two rows on two partitions and a log line (a keyless table: a duplicate would show).
    await publish(100n, [
      on(0, item('c', 101n, null, ['1', 'one', '1'])),
      on(1, item('c', 102n, null, ['2', 'two', '2'])),
      logged(103n, 'a'),
    ]);
    // T2: row 1 moves to key 3 (the update on the new key's partition, delete and tombstone on
    // the old one's), then key 1 is used again: applied in number order, row 1 survives.
    const moved = item('u', 201n, ['1', 'one', '1'], ['3', 'one', '1']);
    const gone = item('d', 201n, ['1', 'one', '1'], null);
    const T2 = [
      on(1, moved),
      on(0, gone),
      on(0, { key: gone.key, value: null }),
      on(0, item('c', 202n, null, ['1', 'again', '1'])),
      logged(203n, 'b'),
    ];
    await publish(200n, T2);
    // The capture dies while sending T3, comes back and sends T2 (not confirmed yet) and T3 again.
    const T3 = [logged(301n, 'c'), on(1, item('u', 302n, null, ['2', 'TWO', '2']))];
    await publish(300n, T3, 2);
    await publish(200n, T2);
    await publish(300n, T3);
    const first = applier('g1');
    await first.start();
    try {
      await reaches(first, state, {
        items: [
          { id: 1, name: 'again' },
          { id: 2, name: 'TWO' },
          { id: 3, name: 'one' },
        ],
        log: ['a', 'b', 'c'],
      });
      // T4 is under way: nothing of it may show until its END.
      await publish(400n, [logged(401n, 'd'), on(0, item('d', 402n, ['1', 'again', '1'], null))], 3);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await state()).log).toEqual(['a', 'b', 'c']);
    } finally {
      await first.stop();
    }
    expect(first.error).toBeNull();
    // The capture sends T4 again, whole; a new applier of the group resumes from the stored offsets.
    await publish(400n, [logged(401n, 'd'), on(0, item('d', 402n, ['1', 'again', '1'], null))]);
    const second = applier('g1');
    await second.start();
    try {
      await reaches(second, state, {
        items: [
          { id: 2, name: 'TWO' },
          { id: 3, name: 'one' },
        ],
        log: ['a', 'b', 'c', 'd'],
      });
    } finally {
      await second.stop();
    }
  });

  it('stops on a change the destination refuses, applying nothing of its transaction, or parks it in the dead-letter topic and commits the rest', async () => {
    await publish(500n, [
      logged(501n, 'e'),
      on(0, item('c', 502n, null, ['7', 'bad', '-1'])),
      on(1, item('c', 503n, null, ['8', 'good', '8'])),
    ]);
    const strict = applier('g1');
    await startUntilFailure(strict, 'the strict applier to fail');
    expect(strict.error!.message).toMatch(
      /"shop"."Items"[\s\S]*check constraint "Items_qty_check"[\s\S]*nothing of source transaction 500:500 is on the destination/,
    );
    expect((await state()).log).toEqual(['a', 'b', 'c', 'd']);

    const parked: string[] = [];
    const lenient = applier('g1', {
      onError: 'dead-letter',
      deadLetterTopic: 'pre.dlq',
      onDeadLetter: (_t, offset, reason) => parked.push(`${offset}: ${reason}`),
    });
    await lenient.start();
    try {
      await reaches(lenient, async () => (await state()).log, ['a', 'b', 'c', 'd', 'e']);
    } finally {
      await lenient.stop();
    }
    expect((await state()).items.map((r) => r.id as number)).toEqual([2, 3, 8]);
    expect(lenient.deadLettered).toBe(1);
    expect(parked[0]).toMatch(/check constraint "Items_qty_check"/);
  });

  it('stops at a record that does not decode, naming it and applying nothing of its transaction, or parks it and commits the rest', async () => {
    const whole = item('c', 602n, null, ['9', 'corrupt', '9']);
    // The right schema id, a body cut short: what a broken producer or a bit flip leaves.
    const corrupt = { key: whole.key, value: whole.value.subarray(0, whole.value.length - 6) };
    await publish(600n, [
      logged(601n, 'f'),
      on(0, corrupt),
      on(1, item('c', 603n, null, ['10', 'ten', '10'])),
    ]);
    const undecodable =
      /^Kafka topic pre\.shop\.Items partition 0 offset \d+: Avro value of schema \d+ does not decode/;
    const strict = applier('g1');
    await startUntilFailure(strict, 'the strict applier to fail on the record that does not decode');
    expect(strict.error!.message).toMatch(undecodable);
    expect(strict.error!.message).toMatch(/the applier stops here \(onError strict\)/);
    expect((await state()).log).toEqual(['a', 'b', 'c', 'd', 'e']);

    const parked: string[] = [];
    const lenient = applier('g1', {
      onError: 'dead-letter',
      deadLetterTopic: 'pre.dlq',
      onDeadLetter: (_t, _offset, reason) => parked.push(reason),
    });
    await lenient.start();
    try {
      await reaches(lenient, async () => (await state()).log, ['a', 'b', 'c', 'd', 'e', 'f']);
    } finally {
      await lenient.stop();
    }
    expect((await state()).items.map((r) => r.id as number)).toEqual([2, 3, 8, 10]);
    expect(lenient.deadLettered).toBe(1);
    expect(parked).toHaveLength(1);
    expect(parked[0]).toMatch(undecodable);
  });

  it('applies a transaction of thousands of records over every partition while it arrives in pieces, its partitions paused and resumed', async () => {
    const lsn = 700n;
    const rows = 3000;
    const records: TxRecord[] = [];
    for (let i = 0; i < rows; i++) {
      const id = 1000 + i;
      records.push(on(id % 2, item('c', lsn + BigInt(i), null, [String(id), `n${id}`, String(i)])));
      if (i % 300 === 0) records.push(logged(lsn + BigInt(i), `g${i}`));
    }
    // A few KB per partition before it pauses: every partition pauses and resumes many times.
    const a = applier('g1', { maxQueuedBytes: 4096 });
    await a.start();
    try {
      await publishLarge(lsn, records, 500);
      const total = async () =>
        pg.query(`SELECT count(*)::int AS n, sum(qty)::int AS qty FROM shop."Items" WHERE id >= 1000`);
      await reaches(a, total, [{ n: rows, qty: (rows * (rows - 1)) / 2 }]);
      expect((await state()).log.filter((w) => w.startsWith('g'))).toEqual(
        Array.from({ length: 10 }, (_, i) => `g${i * 300}`).sort(),
      );
      // Every partition's stored offset is at its end: each record of it was taken once.
      const admin = kafka.admin();
      await admin.connect();
      const ends = new Map<string, bigint>();
      for (const t of targets)
        for (const o of await admin.fetchTopicOffsets(t.topic))
          ends.set(`${t.topic}:${o.partition}`, BigInt(o.high));
      await admin.disconnect();
      await waitFor(() => [...ends].every(([k, end]) => a.positions.get(k) === end), {
        reason: 'the stored offsets to reach the end of every table partition',
        timeout: 30_000,
      });
    } finally {
      await a.stop();
    }
    expect(a.error).toBeNull();
  });

  it('stops on a change refused in a run applied while the next is gathered, leaving nothing of the transaction', async () => {
    // 12,000 changes: runs of 5000 go to the destination while the next is decoded; the first
    // one is refused while the applier gathers the second.
    const lsn = 900n;
    const rows = 12_000;
    const records: TxRecord[] = [];
    for (let i = 0; i < rows; i++) {
      const id = 20_000 + i;
      const qty = i === 10 ? '-1' : String(i);
      records.push(on(id % 2, item('c', lsn + BigInt(i), null, [String(id), `n${id}`, qty])));
    }
    await publishLarge(lsn, records, 2000);
    const strict = applier('g1');
    await startUntilFailure(strict, 'the strict applier to fail on the refused change');
    expect(strict.error!.message).toMatch(
      /"shop"."Items"[\s\S]*check constraint "Items_qty_check"[\s\S]*nothing of source transaction 900:900 is on the destination/,
    );
    // Neither the refused run nor the one gathered after it is on the destination.
    expect(await pg.query(`SELECT count(*)::int AS n FROM shop."Items" WHERE id >= 20000`)).toEqual([
      { n: 0 },
    ]);
  });

  it('refuses to take over a stream a per-key applier has been applying', async () => {
    const client = await pg.connect();
    await storeOffset(client, 'g-per-key', targets[0].topic, 0, 3n, streamPosition(100n, 2));
    await client.end();
    const a = applier('g-per-key');
    await expect(a.start()).rejects.toThrow(
      /already applied changes with options.consistency per-key .*set options.consistency back to per-key/,
    );
    await a.stop();
  });
});
