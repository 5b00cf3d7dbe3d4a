import { kafkaFromEnv } from './kafka';
import { newClusterId, serverProperties } from './kafka-config';

function parse(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe('serverProperties', () => {
  it('describes one broker+controller on 127.0.0.1 set for tests', () => {
    const p = parse(serverProperties('/data', 9092, 9093));
    expect(p).toMatchObject({
      'process.roles': 'broker,controller',
      listeners: 'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093',
      'advertised.listeners': 'PLAINTEXT://127.0.0.1:9092',
      'controller.quorum.bootstrap.servers': '127.0.0.1:9093',
      'log.dirs': '/data/storage',
      'auto.create.topics.enable': 'false',
      'offsets.topic.replication.factor': '1',
      'transaction.state.log.replication.factor': '1',
      'min.insync.replicas': '1',
      'group.initial.rebalance.delay.ms': '0',
    });
    // --standalone formatting refuses a static voter list.
    expect(p['controller.quorum.voters']).toBeUndefined();
  });

  it('lets overrides win and writes backslashes escaped', () => {
    const p = parse(
      serverProperties('/data', 1, 2, {
        'auto.create.topics.enable': true,
        'ssl.keystore.location': 'C:\\k',
      }),
    );
    expect(p['auto.create.topics.enable']).toBe('true');
    expect(p['ssl.keystore.location']).toBe('C:\\\\k');
  });

  it.each([
    [{ 'bad key': 1 }, 'Kafka config key "bad key" is not a property name'],
    [{ 'log.dirs': '/a\nnode.id=2' }, 'Kafka config log.dirs: the value must be one line'],
  ])('refuses %j', (overrides, message) => {
    expect(() => serverProperties('/data', 1, 2, overrides)).toThrow(message);
  });
});

describe('newClusterId', () => {
  it('is 22 base64url characters that do not start with a dash', () => {
    for (let i = 0; i < 200; i++) {
      const id = newClusterId();
      expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
      expect(Buffer.from(id, 'base64url')).toHaveLength(16);
    }
  });
});

describe('kafkaFromEnv', () => {
  const saved = process.env.PGFERRY_TEST_KAFKA_BROKERS;
  afterEach(() => {
    if (saved === undefined) delete process.env.PGFERRY_TEST_KAFKA_BROKERS;
    else process.env.PGFERRY_TEST_KAFKA_BROKERS = saved;
  });

  it.each([
    [undefined, null],
    ['', null],
    [' , ', null],
    ['127.0.0.1:9092', { brokers: ['127.0.0.1:9092'] }],
    ['a:1, b:2,', { brokers: ['a:1', 'b:2'] }],
  ])('reads %j as %j', (value, expected) => {
    if (value === undefined) delete process.env.PGFERRY_TEST_KAFKA_BROKERS;
    else process.env.PGFERRY_TEST_KAFKA_BROKERS = value;
    expect(kafkaFromEnv()).toEqual(expected);
  });
});
