import {
  checkTopicConfigs,
  KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  neededMessageBytes,
  planTopic,
  replicationFor,
} from './kafka-topic-plan';

const MIB = 1024 * 1024;

describe('topic plan', () => {
  it.each([
    [0, KAFKA_DEFAULT_MAX_MESSAGE_BYTES],
    [300_000, KAFKA_DEFAULT_MAX_MESSAGE_BYTES],
    [2 * MIB, 5 * MIB],
    [5 * MIB, 11 * MIB],
  ])(
    'a widest row of %d bytes needs max.message.bytes %d (twice the row, headroom, whole MiB)',
    (row, max) => {
      expect(neededMessageBytes(row)).toBe(max);
    },
  );

  it.each([
    [1, { replicationFactor: 1, minInsyncReplicas: 1 }],
    [2, { replicationFactor: 2, minInsyncReplicas: 1 }],
    [3, { replicationFactor: 3, minInsyncReplicas: 2 }],
    [7, { replicationFactor: 3, minInsyncReplicas: 2 }],
  ])('%d brokers: %j', (brokers, expected) => {
    expect(replicationFor(brokers)).toEqual(expected);
  });

  it('table topics are kept whole with the retention asked and sized for the row; heartbeats a day', () => {
    const input = { brokers: 3, widestRowBytes: 2 * MIB, retentionMs: -1 };
    expect(planTopic('table', input)).toEqual({
      replicationFactor: 3,
      configs: {
        'cleanup.policy': 'delete',
        'retention.ms': '-1',
        'retention.bytes': '-1',
        'max.message.bytes': String(5 * MIB),
        'min.insync.replicas': '2',
      },
    });
    expect(planTopic('heartbeat', { ...input, brokers: 1 })).toEqual({
      replicationFactor: 1,
      configs: {
        'cleanup.policy': 'delete',
        'retention.ms': String(24 * 3600 * 1000),
        'retention.bytes': '-1',
        'max.message.bytes': String(KAFKA_DEFAULT_MAX_MESSAGE_BYTES),
      },
    });
    expect(planTopic('table', { ...input, maxMessageBytes: 64 * MIB }).configs['max.message.bytes']).toBe(
      String(64 * MIB),
    );
  });

  it('an existing topic: too small fails, compaction and a shorter retention alert, a fitting one passes', () => {
    const plan = planTopic('table', { brokers: 1, widestRowBytes: 2 * MIB, retentionMs: -1 });
    expect(checkTopicConfigs('t', 'table', { ...plan.configs }, plan)).toEqual([]);
    const problems = checkTopicConfigs(
      't',
      'table',
      { 'cleanup.policy': 'compact', 'retention.ms': '604800000', 'max.message.bytes': '1048588' },
      plan,
    );
    expect(problems.map((p) => [p.config, p.level, p.fix.split(' --add-config ')[1]])).toEqual([
      ['max.message.bytes', 'failed', `max.message.bytes=${5 * MIB}`],
      ['cleanup.policy', 'alert', 'cleanup.policy=delete'],
      ['retention.ms', 'alert', 'retention.ms=-1'],
    ]);
    const week = planTopic('table', { brokers: 1, widestRowBytes: 0, retentionMs: 604_800_000 });
    expect(checkTopicConfigs('t', 'table', { 'retention.ms': '-1' }, week)).toEqual([]);
    expect(checkTopicConfigs('t', 'table', { 'retention.ms': '3600000' }, week).map((p) => p.config)).toEqual(
      ['retention.ms'],
    );
  });
});
