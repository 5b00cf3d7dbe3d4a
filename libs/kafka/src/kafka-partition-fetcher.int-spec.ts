import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { ObjectError } from '@pgferry/core';
import { waitFor, startTestBroker, type TestBroker } from '@pgferry/testing';
import { KafkaProducer } from './kafka-producer';
import type { KafkaClientConfig } from './kafka-config';
import { KafkaPartitionFetcher } from './kafka-partition-fetcher';
import { forEachRecord } from '@pgferry/kafka-protocol';

const execFileP = promisify(execFile);

type Read = Map<number, Array<[string, string | null]>>;

/** pgferry's client configuration for the brokers a kafkajs client was made for. */
const brokersOf = new WeakMap<Kafka, string[]>();
const ours = (kafka: Kafka): KafkaClientConfig => ({
  brokers: brokersOf.get(kafka)!,
  clientId: 'fetcher-test',
});

/** Every record from `start` to the high watermark, by partition: [offset, value as text]. */
async function fetchAll(kafka: Kafka, topic: string, start: (p: number) => bigint): Promise<Read> {
  const fetcher = new KafkaPartitionFetcher(ours(kafka), {
    maxWaitMs: 50,
    maxBytesPerPartition: 2048,
    maxBytes: 8192,
  });
  await fetcher.connect([topic], (_t, p) => start(p));
  const admin = kafka.admin();
  await admin.connect();
  const high = new Map((await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, BigInt(o.high)]));
  await admin.disconnect();
  const next = new Map([...high.keys()].map((p) => [p, start(p)]));
  const out: Read = new Map();
  try {
    while ([...high].some(([p, h]) => next.get(p)! < h)) {
      for (const data of await fetcher.fetch()) {
        next.set(data.partition, data.nextOffset);
        const list = out.get(data.partition) ?? [];
        out.set(data.partition, list);
        for (const b of data.batches)
          forEachRecord(b, data.from, `${topic}/${data.partition}`, (o, v) =>
            list.push([String(o), v?.toString() ?? null]),
          );
      }
    }
  } finally {
    await fetcher.close();
  }
  return out;
}

/** The same records as a kafkajs consumer group reads them. */
async function consumeAll(kafka: Kafka, topic: string, expected: number): Promise<Read> {
  const consumer = kafka.consumer({ groupId: `read-${topic}`, maxWaitTimeInMs: 100 });
  const out: Read = new Map();
  let count = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        out.set(partition, [
          ...(out.get(partition) ?? []),
          [message.offset, message.value?.toString() ?? null],
        ]);
        count++;
      },
    });
    await waitFor(() => count >= expected, { timeout: 30_000, reason: `${expected} records on ${topic}` });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

function sorted(read: Read): Array<[number, Array<[string, string | null]>]> {
  return [...read].filter(([, l]) => l.length > 0).sort(([a], [b]) => a - b);
}

describe('KafkaPartitionFetcher (own Fetch requests through kafkajs connections)', () => {
  let broker: TestBroker;
  let kafka: Kafka;
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-fetcher-'));

  beforeAll(async () => {
    broker = await startTestBroker();
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    brokersOf.set(kafka, broker.brokers);
  });
  afterAll(async () => {
    await broker?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function createTopic(topic: string, numPartitions: number) {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
    await admin.disconnect();
  }

  async function kcatProduce(topic: string, partition: number, lines: string[], codec = 'none') {
    if (spawnSync('kcat', ['-V']).error)
      throw new Error('kcat is not installed: run apt-get install kcat (bash .ci/run does)');
    const child = execFileP(
      'kcat',
      ['-b', broker.brokers[0], '-P', '-t', topic, '-p', String(partition), '-z', codec],
      {
        timeout: 30_000,
      },
    );
    child.child.stdin!.end(lines.join('\n') + '\n');
    await child;
  }

  it('reads what kafkajs, the raw producer and kcat wrote exactly as a kafkajs consumer reads it', async () => {
    const topic = 'fetch.mixed';
    await createTopic(topic, 3);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: Array.from({ length: 300 }, (_, i) => ({
        partition: i % 3,
        key: i % 4 ? `k${i}` : null,
        value: i % 13 === 0 ? null : `kafkajs ${i} ${'y'.repeat(i % 300)} ✓`,
        headers: i % 2 ? { 'pgferry.pos': Buffer.from([i & 255]), other: `h${i}` } : undefined,
      })),
    });
    await producer.disconnect();
    const publisher = new KafkaProducer(ours(kafka), { maxBatchBytes: 1000 });
    await publisher.connect();
    await publisher.publish(
      topic,
      Array.from({ length: 400 }, (_, i) => ({
        key: Buffer.from(`p${i}`),
        value: i % 17 ? Buffer.from(`raw ${i} ${'z'.repeat(i)}`) : null,
      })),
    );
    await publisher.close();
    await kcatProduce(
      topic,
      1,
      Array.from({ length: 100 }, (_, i) => `kcat line ${i}`),
    );
    const want = await consumeAll(kafka, topic, 800);
    const got = await fetchAll(kafka, topic, () => 0n);
    expect(sorted(got)).toEqual(sorted(want));
  });

  it('starts at the offsets given, inside a batch, and returns nothing before them', async () => {
    const topic = 'fetch.start';
    await createTopic(topic, 2);
    const publisher = new KafkaProducer(ours(kafka));
    await publisher.connect();
    await publisher.publish(
      topic,
      Array.from({ length: 200 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })),
    );
    await publisher.close();
    const all = await fetchAll(kafka, topic, () => 0n);
    const got = await fetchAll(kafka, topic, (p) => (p === 0 ? 7n : 0n));
    expect(got.get(0)).toEqual(all.get(0)!.slice(7));
    expect(got.get(1)).toEqual(all.get(1));
  });

  it('reads the batches another producer compressed (kafkajs, gzip)', async () => {
    const topic = 'fetch.gzip';
    await createTopic(topic, 2);
    const producer = kafka.producer();
    await producer.connect();
    const values = Array.from({ length: 20 }, (_, i) => `compressible ${i} ${'x'.repeat(i * 10)}`);
    await producer.send({
      topic,
      compression: CompressionTypes.GZIP,
      messages: values.map((value) => ({ partition: 1, value })),
    });
    await producer.disconnect();
    const got = await fetchAll(kafka, topic, () => 0n);
    expect(got.get(1)).toEqual(values.map((v, i) => [String(i), v]));
  });

  it('fetches a partition in fewer bytes by its expansion, so its records stay within the limits once decompressed', async () => {
    const topic = 'fetch.expansion';
    await createTopic(topic, 1);
    const producer = kafka.producer();
    await producer.connect();
    for (let i = 0; i < 40; i++)
      await producer.send({ topic, messages: [{ partition: 0, value: `${i} ${'v'.repeat(4000)}` }] });
    await producer.disconnect();
    const firstRound = async (expansion?: number) => {
      const fetcher = new KafkaPartitionFetcher(ours(kafka), {
        maxWaitMs: 50,
        maxBytesPerPartition: 64 * 1024,
        maxBytes: 1024 * 1024,
        expansion: expansion === undefined ? undefined : () => expansion,
      });
      await fetcher.connect([topic], () => 0n);
      try {
        const [data] = await fetcher.fetch();
        return data.batches.reduce((n, b) => n + (b.end - b.start), 0);
      } finally {
        await fetcher.close();
      }
    };
    const whole = await firstRound();
    const quarter = await firstRound(4);
    // Each batch is about 4.1 KB: 64 KB holds 15 of them, 16 KB 3.
    expect(whole).toBeGreaterThan(48 * 1024);
    expect(whole).toBeLessThanOrEqual(64 * 1024);
    expect(quarter).toBeGreaterThan(8 * 1024);
    expect(quarter).toBeLessThanOrEqual(16 * 1024);
  });

  it('fails with the fix when the stored offset is beyond the partition', async () => {
    const topic = 'fetch.range';
    await createTopic(topic, 1);
    const fetcher = new KafkaPartitionFetcher(ours(kafka), {
      maxWaitMs: 10,
      maxBytesPerPartition: 1024,
      maxBytes: 1024,
    });
    await fetcher.connect([topic], () => 50n);
    try {
      const failure = fetcher.fetch();
      await expect(failure).rejects.toThrow(ObjectError);
      await expect(failure).rejects.toThrow(
        /^Kafka topic fetch.range partition 0: the next record needed is at offset 50, outside what the partition holds \(0 to 0\).*start the task afresh into an empty destination \(a new run\)$/,
      );
    } finally {
      await fetcher.close();
    }
  });

  it('stops at a gap (records deleted before they were read) naming the offset needed and the log start, never skipping', async () => {
    const topic = 'fetch.gap';
    await createTopic(topic, 1);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })),
    });
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] });
    await admin.disconnect();
    const fetcher = new KafkaPartitionFetcher(ours(kafka), {
      maxWaitMs: 10,
      maxBytesPerPartition: 1024,
      maxBytes: 1024,
    });
    await fetcher.connect([topic], () => 4n);
    try {
      const failure = fetcher.fetch();
      await expect(failure).rejects.toThrow(ObjectError);
      await expect(failure).rejects.toThrow(
        'Kafka topic fetch.gap partition 0: the next record needed is at offset 4, but the log starts at offset 6 (it holds 6 to 10): records 4 to 5 were deleted',
      );
    } finally {
      await fetcher.close();
    }
  });
});
