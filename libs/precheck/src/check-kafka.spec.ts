import { checkKafka, type KafkaFacts } from './check-kafka';

const MB = 1024 * 1024;
const external: KafkaFacts = {
  kind: 'external',
  where: 'k1:9092,k2:9092,k3:9092',
  brokerCount: 3,
  clusterId: 'abc',
  existingTopics: 1,
  missingTopics: 3,
  foreign: null,
  reset: [],
  problems: [],
  maxMessageBytes: 5 * MB,
  retentionMs: -1,
  replicationFactor: 3,
};
const row = { table: '"public"."docs"', bytes: 2 * MB, sampled: false };
const levels = (facts: KafkaFacts, widest = row, dbBytes = 0) =>
  checkKafka(facts, widest, dbBytes).map((i) => [i.id, i.level]);

describe('precheck: Kafka section', () => {
  it('passes a reachable cluster whose topics are free, with its replication and the widest row', () => {
    const items = checkKafka(external, row, 0);
    expect(items.map((i) => [i.id, i.level, i.message])).toEqual([
      [
        'kafka:broker',
        'passed',
        'reached Kafka k1:9092,k2:9092,k3:9092 (cluster abc, 3 brokers): topics get replication factor 3',
      ],
      ['kafka:topics', 'passed', "1 of the task's topics exist and hold only its run's records; 3 to create"],
      [
        'kafka:retention',
        'passed',
        "the task's topics keep records forever (retention.ms -1), kept whole (not compacted), as a replay needs",
      ],
      [
        'kafka:message-size',
        'passed',
        'the widest row ("public"."docs") holds 2.0 MB; the table topics take records up to max.message.bytes 5242880',
      ],
    ]);
  });

  it('an unreachable broker fails alone; foreign topics fail; a reset says what it deletes', () => {
    expect(levels({ kind: 'external', where: 'k1:9092', unreachable: 'connection refused' })).toEqual([
      ['kafka:broker', 'failed'],
    ]);
    expect(levels({ ...external, foreign: 'Kafka topic t holds records ...' })[1]).toEqual([
      'kafka:topics',
      'failed',
    ]);
    const reset = checkKafka({ ...external, reset: ['t1', 't2'] }, row, 0)[1];
    expect(reset.message).toBe(
      "kafka.resetTopics: t1, t2 hold another run's records and will be deleted and created again",
    );
  });

  it('a row past what a Kafka request carries fails, naming the table and the way out', () => {
    const items = checkKafka(external, { ...row, bytes: 30 * MB, sampled: true }, 0);
    const size = items.find((i) => i.id === 'kafka:message-size')!;
    expect(size.level).toBe('failed');
    expect(size.message).toContain('"public"."docs", from a sample of the table');
    expect(size.message).toContain('objects.exclude');
  });

  it("the embedded broker's disk: failed under the tables' size, alert under twice it, passed above", () => {
    const embedded: KafkaFacts = {
      kind: 'embedded',
      where: '/w/kafka',
      maxMessageBytes: MB,
      retentionMs: -1,
    };
    const disk = (free: number) =>
      checkKafka({ ...embedded, freeDiskBytes: free }, row, 100 * MB).find((i) => i.id === 'kafka:disk')!
        .level;
    expect([disk(50 * MB), disk(150 * MB), disk(300 * MB)]).toEqual(['failed', 'alert', 'passed']);
  });
});
