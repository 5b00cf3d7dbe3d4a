import { startTestBroker, type TestBroker } from '@pgferry/testing';
import { withKafkaAdmin } from './kafka-admin';
import { KafkaProducer } from './kafka-producer';
import { topicHoldings } from './kafka-topic-owners';

/**
 * What pgferry reads and does with a task's topics (docs/kafka-topics.md), on both brokers:
 * whose records a topic holds, a topic created like others, a deletion that is finished when
 * it returns.
 */
describe(`Kafka topics on the ${process.env.PGFERRY_TEST_BROKER ?? 'embedded'} broker`, () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(() => broker?.close());

  const HEADER = 'pgferry.run';
  async function publish(topic: string, run: string | null, n: number): Promise<void> {
    const producer = new KafkaProducer(broker.client());
    await producer.connect();
    try {
      await producer.publish(
        topic,
        Array.from({ length: n }, (_, i) => ({
          key: Buffer.from(`k${i}`),
          value: Buffer.from('v'),
          partition: 0,
          headers: run ? [{ key: HEADER, value: Buffer.from(run) }] : [],
        })),
      );
    } finally {
      await producer.close();
    }
  }

  it("counts the records that cannot be a run's (none from its start offsets on) and tells whose they are; a headerless record is of no run", async () => {
    const client = broker.client();
    await withKafkaAdmin(client, (admin) =>
      admin.ensureTopics([
        { name: 'own-a', partitions: 1 },
        { name: 'own-empty', partitions: 2 },
        { name: 'own-bare', partitions: 1 },
      ]),
    );
    await publish('own-a', 'run-1', 3);
    await publish('own-a', 'run-2', 2);
    await publish('own-bare', null, 1);
    const read = (starts?: Map<string, bigint>) =>
      withKafkaAdmin(client, (admin) =>
        topicHoldings(admin, client, ['own-a', 'own-empty', 'own-bare', 'own-missing'], HEADER, starts),
      );
    const show = (h: Awaited<ReturnType<typeof read>>) =>
      Object.fromEntries(
        h.map((t) => [t.topic, { records: t.records, foreign: t.foreignRecords, runs: [...t.runs] }]),
      );
    // A new run (no start offsets): every record is foreign, and the first one says whose.
    expect(show(await read())).toEqual({
      'own-a': { records: 5n, foreign: 5n, runs: ['run-1'] },
      'own-empty': { records: 0n, foreign: 0n, runs: [] },
      'own-bare': { records: 1n, foreign: 1n, runs: [''] },
    });
    // run-2 began at offset 3 of own-a: its records are its own (the appliers refuse any other
    // there), the earlier ones were there before it and are not judged; own-bare is still foreign.
    const resumed = show(await read(new Map([['own-a:0', 3n]])));
    expect([resumed['own-a'], resumed['own-bare']]).toEqual([
      { records: 5n, foreign: 0n, runs: [] },
      { records: 1n, foreign: 1n, runs: [''] },
    ]);
    // Only the first `probeTopics` foreign topics are read to say whose.
    const one = await withKafkaAdmin(client, (admin) =>
      topicHoldings(admin, client, ['own-a', 'own-bare'], HEADER, new Map(), 1),
    );
    expect(one.map((t) => [t.topic, t.foreignRecords, [...t.runs]])).toEqual([
      ['own-a', 5n, ['run-1']],
      ['own-bare', 1n, []],
    ]);
  });

  it("specLike gives a new topic the replication and the replay configs of the task's widest topic", async () => {
    const client = broker.client();
    const configs = await withKafkaAdmin(client, async (admin) => {
      await admin.ensureTopics([
        { name: 'like-narrow', partitions: 1, configs: { 'retention.ms': '-1' } },
        {
          name: 'like-wide',
          partitions: 1,
          configs: { 'retention.ms': '-1', 'max.message.bytes': '3145728' },
        },
      ]);
      const like = await admin.specLike(['like-narrow', 'like-wide', 'like-missing']);
      expect(like.replicationFactor).toBe(1);
      await admin.ensureTopics([{ name: 'like-new', partitions: 1, ...like }]);
      return (await admin.describeTopicConfigs(['like-new'])).get('like-new')!;
    });
    expect({
      retention: configs['retention.ms'],
      max: configs['max.message.bytes'],
      policy: configs['cleanup.policy'],
    }).toEqual({ retention: '-1', max: '3145728', policy: 'delete' });
    expect(await withKafkaAdmin(client, (admin) => admin.specLike(['like-missing']))).toEqual({});
  });

  it('deleteTopics returns once the topic is gone: created again, it is empty', async () => {
    const client = broker.client();
    await withKafkaAdmin(client, (admin) => admin.ensureTopics([{ name: 'gone', partitions: 1 }]));
    await publish('gone', 'run-1', 4);
    const ends = await withKafkaAdmin(client, async (admin) => {
      await admin.deleteTopics(['gone']);
      expect(await admin.listTopics()).not.toContain('gone');
      await admin.ensureTopics([{ name: 'gone', partitions: 1 }]);
      return admin.topicEnds(['gone']);
    });
    expect([...ends.values()]).toEqual([0n]);
  });
});
