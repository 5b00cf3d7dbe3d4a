import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { startTestBroker } from '../test/broker-fixture';

const execFileP = promisify(execFile);

/** kcat (librdkafka) is an independent Kafka client; .ci/run installs it (apt-get install kcat). */
async function kcat(args: string[], input?: string): Promise<string> {
  const run = execFileP('kcat', args, { timeout: 30_000 });
  if (input !== undefined) {
    run.child.stdin!.end(input);
  }
  const { stdout } = await run;
  return stdout;
}

describe('embedded broker with kcat (librdkafka)', () => {
  let broker: Awaited<ReturnType<typeof startTestBroker>>;
  let b: string;
  beforeAll(async () => {
    if (spawnSync('kcat', ['-V']).error)
      throw new Error('kcat is not installed: run apt-get install kcat (bash .ci/run does)');
    broker = await startTestBroker({ defaultPartitions: 2 });
    b = broker.brokers[0];
  });
  afterAll(() => broker?.stop());

  it('-L lists the broker and topics', async () => {
    const admin = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'kcat.meta', numPartitions: 3 }] });
    await admin.disconnect();
    const out = await kcat(['-b', b, '-L', '-t', 'kcat.meta']);
    expect(out).toContain(`broker 0 at ${b} (controller)`);
    expect(out).toMatch(/topic "kcat.meta" with 3 partitions:/);
    expect(out).toMatch(/partition 2, leader 0, replicas: 0, isrs: 0/);
  });

  it('-P produces keyed records (plain and every compression codec) that -C reads back in order', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `key${i}:value ${i} ✓`);
    await kcat(['-b', b, '-P', '-t', 'kcat.plain', '-p', '0', '-K:'], lines.join('\n') + '\n');
    const out = await kcat([
      '-b',
      b,
      '-C',
      '-t',
      'kcat.plain',
      '-p',
      '0',
      '-o',
      'beginning',
      '-e',
      '-q',
      '-f',
      '%k|%s|%o\n',
    ]);
    expect(out.trim().split('\n')).toEqual(lines.map((l, i) => `${l.replace(':', '|')}|${i}`));
    for (const codec of ['gzip', 'snappy', 'lz4', 'zstd']) {
      const topic = `kcat.${codec}`;
      const values = Array.from({ length: 300 }, (_, i) => `${codec}-${i}-${'x'.repeat(i % 50)}`);
      await kcat(['-b', b, '-P', '-t', topic, '-p', '0', '-z', codec], values.join('\n') + '\n');
      const read = await kcat(['-b', b, '-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q']);
      expect(read.trim().split('\n')).toEqual(values);
    }
  });

  it('kafkajs reads what kcat wrote, and kcat reads what kafkajs wrote', async () => {
    await kcat(['-b', b, '-P', '-t', 'kcat.cross', '-p', '0'], 'from-kcat\n');
    const kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'kcat.cross',
      messages: [{ partition: 0, key: 'k', value: 'from-kafkajs', headers: { h: 'v' } }],
    });
    await producer.disconnect();
    const out = await kcat([
      '-b',
      b,
      '-C',
      '-t',
      'kcat.cross',
      '-o',
      'beginning',
      '-e',
      '-q',
      '-f',
      '%s %h\n',
    ]);
    expect(out.trim().split('\n').sort()).toEqual(['from-kafkajs h=v', 'from-kcat ']);
  });

  it('-G consumes as a group and commits offsets that kafkajs admin sees', async () => {
    await kcat(
      ['-b', b, '-P', '-t', 'kcat.group'],
      Array.from({ length: 40 }, (_, i) => `g${i}`).join('\n') + '\n',
    );
    const out = await kcat([
      '-b',
      b,
      '-G',
      'kcat-group',
      '-o',
      'beginning',
      '-e',
      '-q',
      '-X',
      'enable.auto.commit=true',
      '-X',
      'auto.commit.interval.ms=100',
      'kcat.group',
    ]);
    expect(out.trim().split('\n').sort()).toEqual(Array.from({ length: 40 }, (_, i) => `g${i}`).sort());
    const admin = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const offsets = await admin.fetchOffsets({ groupId: 'kcat-group', topics: ['kcat.group'] });
    const high = await admin.fetchTopicOffsets('kcat.group');
    await admin.disconnect();
    // librdkafka spreads keyless messages at random, so a partition can stay empty; a consumer
    // has nothing to commit there. Every partition that holds messages must be committed at its end.
    const committed = new Map(offsets[0].partitions.map((p) => [p.partition, p.offset]));
    const normalise = (p: number, offset: string | undefined) =>
      offset === '-1' && high.find((x) => x.partition === p)?.high === '0' ? '0' : offset;
    expect(high.map((h) => normalise(h.partition, committed.get(h.partition)))).toEqual(
      high.map((h) => h.high),
    );
    expect(high.reduce((sum, h) => sum + Number(h.high), 0)).toBe(40);
  });
});
