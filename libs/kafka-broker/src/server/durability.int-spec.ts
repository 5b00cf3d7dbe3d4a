import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from '@pgferry/testing';
import { startTestBroker } from '../test/broker-fixture';
import { killHard, spawnBroker } from '../test/broker-process';

async function consumeAll(
  brokers: string[],
  topic: string,
  expected: number,
  groupId: string,
): Promise<string[]> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values: string[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void values.push(message.value!.toString()) });
  await waitFor(() => values.length, {
    reason: `${expected} records from ${topic}`,
    until: (n) => n >= expected,
    timeout: 30_000,
  });
  await consumer.disconnect();
  return values;
}

describe('broker durability', () => {
  it('keeps every acknowledged record and committed offset across a restart', async () => {
    const broker = await startTestBroker();
    try {
      let kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'durable', numPartitions: 3 }] });
      await admin.disconnect();
      const producer = kafka.producer({ idempotent: true });
      await producer.connect();
      for (let i = 0; i < 10; i++)
        await producer.send({
          topic: 'durable',
          acks: -1,
          messages: Array.from({ length: 30 }, (_, j) => ({ key: `k${j}`, value: `v${i * 30 + j}` })),
        });
      await producer.disconnect();
      const before = await consumeAll(broker.brokers, 'durable', 300, 'g-durable');
      await broker.restart();
      kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      const admin2 = kafka.admin();
      await admin2.connect();
      const committed = await admin2.fetchOffsets({ groupId: 'g-durable', topics: ['durable'] });
      const high = await admin2.fetchTopicOffsets('durable');
      expect(committed[0].partitions.map((p) => p.offset).sort()).toEqual(high.map((h) => h.high).sort());
      expect(high.reduce((a, h) => a + Number(h.high), 0)).toBe(300);
      await admin2.disconnect();
      const after = await consumeAll(broker.brokers, 'durable', 300, 'g-fresh');
      expect(after.sort()).toEqual(before.sort());
    } finally {
      await broker.stop();
    }
  });

  it('loses no acknowledged record when killed with SIGKILL during produce (flush per batch)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-kill-'));
    let proc = await spawnBroker(dataDir, 0, ['--flush', 'batch']);
    const port = proc.port;
    try {
      const kafka = new Kafka({
        brokers: [`127.0.0.1:${port}`],
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
      });
      const producer = kafka.producer({
        idempotent: true,
        retry: { retries: 1, initialRetryTime: 50, maxRetryTime: 100 },
      });
      await producer.connect();
      const acked: string[] = [];
      let stop = false;
      const loop = (async () => {
        for (let i = 0; !stop; i++) {
          const messages = Array.from({ length: 20 }, (_, j) => ({ value: `m${i}-${j}` }));
          try {
            await producer.send({ topic: 'killed', acks: -1, messages });
            acked.push(...messages.map((m) => m.value));
          } catch {
            return;
          }
        }
      })();
      await waitFor(() => acked.length, {
        reason: 'some acknowledged records before the kill',
        until: (n) => n >= 400,
        timeout: 30_000,
      });
      await killHard(proc.child);
      stop = true;
      await loop;
      await producer.disconnect().catch(() => undefined);
      proc = await spawnBroker(dataDir, port);
      const values = await consumeAll([`127.0.0.1:${port}`], 'killed', acked.length, 'g-killed');
      const stored = new Set(values);
      expect(acked.filter((v) => !stored.has(v))).toEqual([]);
      expect(stored.size).toBe(values.length);
    } finally {
      await killHard(proc.child);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('truncates a torn tail written by hand and keeps appending at the right offset', async () => {
    const broker = await startTestBroker();
    try {
      let kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      let producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: 'torn',
        messages: Array.from({ length: 5 }, (_, i) => ({ value: `ok${i}` })),
      });
      await producer.disconnect();
      await broker.server.close();
      const dir = join(broker.dataDir, 'logs', 'torn-0');
      const logFile = join(
        dir,
        readdirSync(dir).find((f) => f.endsWith('.log'))!,
      );
      const goodSize = statSync(logFile).size;
      // Half a batch: a plausible header claiming 500 bytes, then the writer "crashed".
      const torn = Buffer.alloc(40);
      torn.writeBigInt64BE(5n, 0);
      torn.writeInt32BE(500, 8);
      torn.writeInt8(2, 16);
      appendFileSync(logFile, torn);
      await broker.restart();
      expect(statSync(logFile).size).toBe(goodSize);
      kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      producer = kafka.producer();
      await producer.connect();
      const [res] = await producer.send({ topic: 'torn', messages: [{ value: 'after' }] });
      expect(res.baseOffset).toBe('5');
      await producer.disconnect();
      expect(await consumeAll(broker.brokers, 'torn', 6, 'g-torn')).toEqual([
        'ok0',
        'ok1',
        'ok2',
        'ok3',
        'ok4',
        'after',
      ]);
    } finally {
      await broker.stop();
    }
  });
});
