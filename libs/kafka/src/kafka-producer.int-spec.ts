import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  Kafka,
  logLevel,
  Partitioners,
  type KafkaMessage,
  type Message,
  type PartitionMetadata,
} from 'kafkajs';
import { ObjectError, PgferryError } from '@pgferry/core';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { registerKafkajsLz4, waitFor, startTestBroker, type TestBroker } from '@pgferry/testing';
import { PartitionedBatches } from './framed-batches';
import { KafkaProducer, type ProducerRecord } from './kafka-producer';
import type { KafkaClientConfig } from './kafka-config';

const execFileP = promisify(execFile);

/** Every record of a topic read by a kafkajs consumer, per partition in offset order. */
async function consumeAll(
  kafka: Kafka,
  topic: string,
  expected: number,
): Promise<Map<number, KafkaMessage[]>> {
  const consumer = kafka.consumer({ groupId: `read-${topic}`, maxWaitTimeInMs: 100 });
  const out = new Map<number, KafkaMessage[]>();
  let count = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        out.set(partition, [...(out.get(partition) ?? []), message]);
        count++;
      },
    });
    await waitFor(() => count >= expected, { timeout: 30_000, reason: `${expected} records on ${topic}` });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** The partition kafkajs' own producer gives each message. */
function kafkajsPartitions(messages: Message[], partitions: number): number[] {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  return messages.map((message) => partitioner({ topic: 't', partitionMetadata, message }));
}

/**
 * A TCP proxy in front of the broker that can cut the connection after the broker stored a
 * Produce request and before its response reaches the client: the client cannot know whether
 * the batch was stored and has to send it again. Requests are framed as size, apiKey, apiVersion,
 * correlationId; responses as size, correlationId.
 */
class CuttingProxy {
  private server: Server;
  produceRequests = 0;
  cuts = 0;
  private armed = false;

  /** The broker's port: set once it listens (it advertises the proxy's). */
  upstreamPort = 0;

  constructor() {
    this.server = createServer((client) => this.pipe(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  /** Cut the connection that carries the next Produce request, once its response arrives. */
  armCut(): void {
    this.armed = true;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private pipe(client: Socket): void {
    const upstream = netConnect(this.upstreamPort, '127.0.0.1');
    const cutAfter = new Set<number>();
    let fromClient = Buffer.alloc(0);
    let fromBroker = Buffer.alloc(0);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', kill);
    client.on('data', (data: Buffer) => {
      fromClient = Buffer.concat([fromClient, data]);
      while (fromClient.length >= 4 && fromClient.length >= 4 + fromClient.readInt32BE(0)) {
        const size = fromClient.readInt32BE(0);
        if (fromClient.readInt16BE(4) === 0) {
          this.produceRequests++;
          if (this.armed) {
            this.armed = false;
            cutAfter.add(fromClient.readInt32BE(8));
          }
        }
        fromClient = fromClient.subarray(4 + size);
      }
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      fromBroker = Buffer.concat([fromBroker, data]);
      let forward = 0;
      while (fromBroker.length >= forward + 8) {
        const size = fromBroker.readInt32BE(forward);
        if (cutAfter.has(fromBroker.readInt32BE(forward + 4))) {
          this.cuts++;
          if (forward) client.write(fromBroker.subarray(0, forward));
          return kill();
        }
        if (fromBroker.length < forward + 4 + size) break;
        forward += 4 + size;
      }
      if (forward) client.write(fromBroker.subarray(0, forward));
      fromBroker = fromBroker.subarray(forward);
    });
  }
}

describe('KafkaProducer (record batches of its own, over its own connections)', () => {
  let broker: TestBroker;
  let kafka: Kafka;
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-publisher-'));

  beforeAll(async () => {
    broker = await startTestBroker();
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
  });
  const config = (): KafkaClientConfig => ({ brokers: broker.brokers, clientId: 'producer-test' });
  const records = (messages: Message[]): ProducerRecord[] =>
    messages.map((m) => ({ key: m.key as Buffer | null, value: m.value as Buffer | null }));
  afterAll(async () => {
    await broker?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function createTopic(
    topic: string,
    numPartitions: number,
    configEntries?: Array<{ name: string; value: string }>,
  ) {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions, configEntries }], waitForLeaders: true });
    await admin.disconnect();
  }

  const messagesFor = (n: number): Message[] =>
    Array.from({ length: n }, (_, i) => ({
      key: Buffer.from(`key-${i % 577}`),
      value: i % 97 === 5 ? null : Buffer.from(`value ${i} ${'x'.repeat(i % 200)} ✓`),
    }));

  it('stores keyed records where kafkajs puts them, in order, and kafkajs consumers read them back', async () => {
    const topic = 'publisher.order';
    await createTopic(topic, 3);
    const messages = messagesFor(5000);
    // Small batches: many requests per publish call, several rounds per partition.
    const publisher = new KafkaProducer(config(), { maxBatchBytes: 16_384 });
    await publisher.connect();
    try {
      await publisher.publish(topic, records(messages.slice(0, 2000)));
      await publisher.publish(topic, records(messages.slice(2000)));
    } finally {
      await publisher.close();
    }
    const expected = new Map<number, Message[]>();
    kafkajsPartitions(messages, 3).forEach((p, i) =>
      expected.set(p, [...(expected.get(p) ?? []), messages[i]]),
    );
    const read = await consumeAll(kafka, topic, messages.length);
    for (const p of [0, 1, 2]) {
      const got = read.get(p) ?? [];
      const want = expected.get(p) ?? [];
      expect(got.length).toBe(want.length);
      expect(got.map((m) => m.key?.toString())).toEqual(want.map((m) => (m.key as Buffer).toString()));
      expect(got.map((m) => m.value?.toString() ?? null)).toEqual(
        want.map((m) => (m.value as Buffer | null)?.toString() ?? null),
      );
      expect(got.map((m) => m.offset)).toEqual(want.map((_, i) => String(i)));
    }
  });

  it('writes records that kcat (librdkafka) reads back', async () => {
    if (spawnSync('kcat', ['-V']).error)
      throw new Error('kcat is not installed: run apt-get install kcat (bash .ci/run does)');
    const topic = 'publisher.kcat';
    await createTopic(topic, 2);
    const messages = messagesFor(600).map((m, i) => ({ ...m, value: Buffer.from(`v${i}`) }));
    const publisher = new KafkaProducer(config(), { maxBatchBytes: 4096 });
    await publisher.connect();
    await publisher.publish(topic, records(messages));
    await publisher.close();
    const { stdout } = await execFileP(
      'kcat',
      ['-b', broker.brokers[0], '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p|%o|%k|%s\n'],
      { timeout: 30_000 },
    );
    const partitions = kafkajsPartitions(messages, 2);
    const want = [0, 1].flatMap((p) =>
      messages.filter((_, i) => partitions[i] === p).map((m, o) => `${p}|${o}|${m.key}|${m.value}`),
    );
    expect(stdout.trim().split('\n').sort()).toEqual(want.sort());
  });

  it('sends framed batches lz4-compressed that kcat (librdkafka) and kafkajs read back, in a fraction of the bytes', async () => {
    if (spawnSync('kcat', ['-V']).error)
      throw new Error('kcat is not installed: run apt-get install kcat (bash .ci/run does)');
    registerKafkajsLz4();
    const topic = 'publisher.lz4';
    await createTopic(topic, 2);
    const messages = messagesFor(3000).map((m, i) => ({
      ...m,
      value: Buffer.from(`v${i} ${' '.repeat(84)} ✓`),
    }));
    const framed = (compression: 'lz4' | 'none') => {
      const batches = new PartitionedBatches(2, 64 * 1024);
      for (const m of messages) {
        const key = m.key as Buffer;
        const slab = batches.begin(key, 0, key.length);
        slab.ensure(m.value.length);
        slab.pos += m.value.copy(slab.buf, slab.pos);
        batches.end();
      }
      return { compression, batches: batches.batches() };
    };
    const sent: number[] = [];
    for (const { compression, batches } of [framed('lz4'), framed('none')]) {
      const publisher = new KafkaProducer(config(), { framedCompression: compression });
      await publisher.connect();
      await publisher.publishBatches(topic, batches);
      await publisher.close();
      sent.push(batches.reduce((n, b) => n + b.wireBytes, 0));
    }
    // The same records twice: lz4 first, then uncompressed.
    expect(sent[0]).toBeLessThan(sent[1] / 4);
    const { stdout } = await execFileP(
      'kcat',
      ['-b', broker.brokers[0], '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p|%o|%k|%s\n'],
      { timeout: 30_000, maxBuffer: 64 << 20 },
    );
    const partitions = kafkajsPartitions(messages, 2);
    const want = [0, 1].flatMap((p) => {
      const mine = messages.filter((_, i) => partitions[i] === p);
      return [...mine, ...mine].map((m, o) => `${p}|${o}|${m.key}|${m.value}`);
    });
    expect(stdout.trim().split('\n').sort()).toEqual(want.sort());
    const read = await consumeAll(kafka, topic, 2 * messages.length);
    for (const p of [0, 1]) {
      const mine = messages.filter((_, i) => partitions[i] === p).map((m) => m.value.toString());
      expect(read.get(p)!.map((m) => m.value!.toString())).toEqual([...mine, ...mine]);
    }
  });

  it('sends a batch again when the response is lost, and Kafka stores it once', async () => {
    const topic = 'publisher.retry';
    // A broker of its own that tells clients to connect to the proxy in front of it.
    const proxy = new CuttingProxy();
    const proxyPort = await proxy.listen();
    const proxiedDir = mkdtempSync(join(tmpdir(), 'pgferry-producer-proxied-'));
    const proxied = await startEmbeddedKafka({
      dataDir: proxiedDir,
      port: 0,
      registryPort: null,
      advertisedPort: proxyPort,
    });
    proxy.upstreamPort = proxied.broker.port;
    const direct = new Kafka({ brokers: proxied.brokers, logLevel: logLevel.NOTHING });
    const admin = direct.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const publisher = new KafkaProducer({ brokers: [`127.0.0.1:${proxyPort}`], clientId: 'producer-test' });
    try {
      await publisher.connect();
      const messages = messagesFor(300);
      await publisher.publish(topic, records(messages.slice(0, 100)));
      const before = proxy.produceRequests;
      proxy.armCut();
      await publisher.publish(topic, records(messages.slice(100, 200)));
      expect(proxy.cuts).toBe(1);
      // The cut request and its retry (the records of both partitions travel in one request).
      expect(proxy.produceRequests - before).toBe(2);
      await publisher.publish(topic, records(messages.slice(200)));
      const read = await consumeAll(direct, topic, 300);
      const stored = [...read.values()].flat().map((m) => m.value?.toString() ?? null);
      expect(stored.sort()).toEqual(
        messages.map((m) => (m.value as Buffer | null)?.toString() ?? null).sort(),
      );
    } finally {
      await publisher.close();
      await proxy.close();
      await proxied.close();
      rmSync(proxiedDir, { recursive: true, force: true });
    }
  });

  it('fails naming the topic and partition when Kafka refuses a batch for good', async () => {
    const topic = 'publisher.small';
    await createTopic(topic, 1, [{ name: 'max.message.bytes', value: '2000' }]);
    const publisher = new KafkaProducer(config());
    await publisher.connect();
    try {
      const err = await publisher
        .publish(topic, [{ key: Buffer.from('k'), value: Buffer.alloc(5000) }])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PgferryError);
      expect((err as PgferryError).retriable).toBe(false);
      expect((err as Error).message).toMatch(/topic publisher\.small partition 0: MESSAGE_TOO_LARGE/);
      // The producer recovers with a new producer id.
      await publisher.publish(topic, [{ key: Buffer.from('k'), value: Buffer.from('fits') }]);
      const read = await consumeAll(kafka, topic, 1);
      expect(read.get(0)?.map((m) => m.value?.toString())).toEqual(['fits']);
      await expect(
        publisher.publish('publisher.missing', [{ key: Buffer.from('k'), value: Buffer.from('v') }]),
      ).rejects.toThrow(ObjectError);
    } finally {
      await publisher.close();
    }
  });
});
