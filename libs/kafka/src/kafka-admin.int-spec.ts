import { startTestBroker, type TestBroker } from '@pgferry/testing';
import { withKafkaAdmin } from './kafka-admin';
import { KafkaProducer } from './kafka-producer';

describe(`KafkaAdmin on the ${process.env.PGFERRY_TEST_BROKER ?? 'embedded'} broker`, () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(() => broker?.close());

  it('ensureTopics returns only once each new topic is in the metadata, so a producer can use it at once', async () => {
    // Real Kafka answers CreateTopics before its metadata cache has the topic; each round
    // creates topics and publishes to them straight away on a connection of its own.
    for (let round = 0; round < 10; round++) {
      const topics = [`admin-${round}-a`, `admin-${round}-b`];
      const partitions = await withKafkaAdmin(broker.client(), async (admin) => {
        await admin.ensureTopics(topics.map((name) => ({ name, partitions: 3 })));
        return admin.topicEnds(topics);
      });
      expect([...partitions.keys()].sort()).toEqual(topics.flatMap((t) => [0, 1, 2].map((p) => `${t}:${p}`)));
      const producer = new KafkaProducer(broker.client());
      await producer.connect();
      try {
        const ends = await producer.publish(topics[0], [{ key: Buffer.from('k'), value: Buffer.from('v') }]);
        expect([...ends.values()]).toEqual([1n]);
      } finally {
        await producer.close();
      }
    }
  });

  it('ensureTopics leaves an existing topic as it is, and a topic that does not exist is an ObjectError naming it', async () => {
    await withKafkaAdmin(broker.client(), async (admin) => {
      await admin.ensureTopics([{ name: 'admin-kept', partitions: 2 }]);
      await admin.ensureTopics([{ name: 'admin-kept', partitions: 5 }]);
      expect((await admin.topicEnds(['admin-kept'])).size).toBe(2);
      await expect(admin.topicEnds(['admin-never-created'])).rejects.toThrow(
        /Kafka topic admin-never-created does not exist/,
      );
    });
  });
});
