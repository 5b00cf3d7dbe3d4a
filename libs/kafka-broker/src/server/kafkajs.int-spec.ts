import { Kafka, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { waitFor } from '@pgferry/testing';
import { startTestBroker } from '../test/broker-fixture';

type Broker = Awaited<ReturnType<typeof startTestBroker>>;

describe('embedded broker with kafkajs', () => {
  let broker: Broker;
  let kafka: Kafka;
  beforeAll(async () => {
    broker = await startTestBroker();
    kafka = new Kafka({
      clientId: 'kafkajs-test',
      brokers: broker.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 3 },
    });
  });
  afterAll(() => broker?.stop());

  it('creates, lists and deletes topics, and refuses what Kafka refuses', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(
        await admin.createTopics({
          topics: [
            { topic: 'admin.a', numPartitions: 3 },
            { topic: 'admin.b', configEntries: [{ name: 'retention.ms', value: '60000' }] },
          ],
        }),
      ).toBe(true);
      expect(await admin.createTopics({ topics: [{ topic: 'admin.a' }] })).toBe(false);
      expect((await admin.listTopics()).sort()).toEqual(expect.arrayContaining(['admin.a', 'admin.b']));
      const meta = await admin.fetchTopicMetadata({ topics: ['admin.a'] });
      expect(meta.topics[0].partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
      // kafkajs keeps the error code, not the broker's message (kcat shows the message).
      const errorType = (p: Promise<unknown>) =>
        p.then(
          () => 'none',
          (e) => e.errors?.[0]?.type ?? e.type,
        );
      expect(
        await errorType(admin.createTopics({ topics: [{ topic: 'admin.c', replicationFactor: 3 }] })),
      ).toBe('INVALID_REPLICATION_FACTOR');
      expect(await errorType(admin.createTopics({ topics: [{ topic: 'bad topic!' }] }))).toBe(
        'INVALID_TOPIC_EXCEPTION',
      );
      expect(
        await errorType(
          admin.createTopics({
            topics: [{ topic: 'admin.d', configEntries: [{ name: 'retention.ms', value: 'soon' }] }],
          }),
        ),
      ).toBe('INVALID_CONFIG');
      expect(
        await errorType(
          admin.createTopics({
            topics: [{ topic: 'admin.e', configEntries: [{ name: 'flush.everything', value: '1' }] }],
          }),
        ),
      ).toBe('INVALID_CONFIG');
      const configs = await admin.describeConfigs({
        resources: [{ type: 2, name: 'admin.b' }],
        includeSynonyms: false,
      });
      const retention = configs.resources[0].configEntries.find((c) => c.configName === 'retention.ms');
      expect(retention?.configValue).toBe('60000');
      await admin.createPartitions({ topicPartitions: [{ topic: 'admin.b', count: 4 }] });
      expect((await admin.fetchTopicMetadata({ topics: ['admin.b'] })).topics[0].partitions).toHaveLength(4);
      await admin.deleteTopics({ topics: ['admin.a'] });
      expect(await admin.listTopics()).not.toContain('admin.a');
    } finally {
      await admin.disconnect();
    }
  });

  it('idempotent producer: every record once, in order per partition, offsets from zero', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'idem', numPartitions: 2 }] });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let batch = 0; batch < 5; batch++) {
      await producer.send({
        topic: 'idem',
        acks: -1,
        messages: Array.from({ length: 100 }, (_, i) => ({
          key: `k${i % 10}`,
          value: `v${batch * 100 + i}`,
        })),
      });
    }
    await producer.disconnect();
    const offsets = await admin.fetchTopicOffsets('idem');
    expect(offsets.reduce((a, o) => a + Number(o.high), 0)).toBe(500);
    expect(offsets.every((o) => o.low === '0')).toBe(true);
    await admin.disconnect();
  });

  it('two consumers in one group share the partitions and rebalance when one leaves', async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'shared', numPartitions: 4 }] });
    const producer = kafka.producer();
    await producer.connect();
    const seen = new Map<string, Set<number>>();
    const received: string[] = [];
    const start = (name: string) => {
      const c = kafka.consumer({
        groupId: 'g-shared',
        sessionTimeout: 6000,
        heartbeatInterval: 200,
        rebalanceTimeout: 6000,
        maxWaitTimeInMs: 200,
      });
      return c.connect().then(async () => {
        await c.subscribe({ topic: 'shared', fromBeginning: true });
        await c.run({
          eachMessage: async ({ partition, message }: EachMessagePayload) => {
            if (!seen.has(name)) seen.set(name, new Set());
            seen.get(name)!.add(partition);
            received.push(message.value!.toString());
          },
        });
        return c;
      });
    };
    const c1: Consumer = await start('c1');
    const c2: Consumer = await start('c2');
    await waitFor(async () => (await admin.describeGroups(['g-shared'])).groups[0], {
      reason: 'both consumers to be in the stable group',
      timeout: 30_000,
      interval: 200,
      until: (g) => g.state === 'Stable' && g.members.length === 2,
    });
    for (let p = 0; p < 4; p++)
      await producer.send({
        topic: 'shared',
        messages: Array.from({ length: 25 }, (_, i) => ({ partition: p, value: `p${p}-${i}` })),
      });
    await waitFor(() => received.length, {
      reason: '100 messages across two consumers',
      until: (n) => n >= 100,
      timeout: 30_000,
    });
    expect(seen.get('c1')?.size).toBe(2);
    expect(seen.get('c2')?.size).toBe(2);
    expect([...seen.get('c1')!].some((p) => seen.get('c2')!.has(p))).toBe(false);

    await c2.disconnect();
    await waitFor(async () => (await admin.describeGroups(['g-shared'])).groups[0], {
      reason: 'the group to rebalance to one member',
      timeout: 30_000,
      interval: 200,
      until: (g) => g.state === 'Stable' && g.members.length === 1,
    });
    seen.clear();
    for (let p = 0; p < 4; p++)
      await producer.send({ topic: 'shared', messages: [{ partition: p, value: `after-${p}` }] });
    await waitFor(() => received.filter((v) => v.startsWith('after-')).length, {
      reason: 'c1 to take over all partitions',
      until: (n) => n === 4,
      timeout: 30_000,
    });
    expect([...seen.get('c1')!].sort()).toEqual([0, 1, 2, 3]);
    expect(new Set(received).size).toBe(received.length);
    await c1.disconnect();
    const committed = await admin.fetchOffsets({ groupId: 'g-shared', topics: ['shared'] });
    expect(committed[0].partitions.map((p) => Number(p.offset)).sort()).toEqual([26, 26, 26, 26]);
    await producer.disconnect();
    await admin.disconnect();
  });

  it('seeks and replays from the beginning', async () => {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'replay',
      messages: Array.from({ length: 20 }, (_, i) => ({ value: `r${i}` })),
    });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: 'g-replay', maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'replay', fromBeginning: true });
    const values: string[] = [];
    let replayed = false;
    await consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value!.toString());
        if (values.length === 20 && !replayed) {
          replayed = true;
          consumer.seek({ topic: 'replay', partition: 0, offset: '5' });
        }
      },
    });
    await waitFor(() => values.length, {
      reason: '20 messages then 15 replayed from offset 5',
      until: (n) => n >= 35,
      timeout: 30_000,
    });
    expect(values.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    expect(values.slice(20, 35)).toEqual(Array.from({ length: 15 }, (_, i) => `r${i + 5}`));
    await consumer.disconnect();
  });

  it('answers ListOffsets by timestamp and DeleteRecords moves the low watermark', async () => {
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'times', messages: [{ value: 'old', timestamp: '1000' }] });
    await producer.send({ topic: 'times', messages: [{ value: 'new', timestamp: '5000' }] });
    expect(await admin.fetchTopicOffsetsByTimestamp('times', 3000)).toEqual([{ partition: 0, offset: '1' }]);
    // No record that late: the broker answers -1, which kafkajs turns into the high watermark.
    expect(await admin.fetchTopicOffsetsByTimestamp('times', 9000)).toEqual([{ partition: 0, offset: '2' }]);
    await admin.deleteTopicRecords({ topic: 'times', partitions: [{ partition: 0, offset: '1' }] });
    expect((await admin.fetchTopicOffsets('times'))[0]).toMatchObject({ low: '1', high: '2' });
    await producer.disconnect();
    await admin.disconnect();
  });
});
