import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { startKafka, type KafkaBroker } from './kafka';
import { processAlive } from './process-output';
import { waitFor } from './wait-for';

const execFileP = promisify(execFile);
const KCAT = '/usr/bin/kcat';

/** kcat (librdkafka) is an independent client; .ci/run installs it. */
async function kcat(args: string[], input?: string): Promise<string> {
  const run = execFileP(KCAT, args, { timeout: 30_000 });
  if (input !== undefined) run.child.stdin!.end(input);
  return (await run).stdout;
}

/** Pids of processes whose command line names this broker's server.properties. */
function jvmsOf(kafka: KafkaBroker): number[] {
  const marker = `${kafka.dataDir}/server.properties`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmd.includes('kafka.Kafka') && cmd.includes(marker)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

function client(kafka: KafkaBroker): Kafka {
  return new Kafka({ clientId: 'kafka-fixture-test', brokers: kafka.brokers, logLevel: logLevel.NOTHING });
}

async function createTopic(kafka: KafkaBroker, topic: string): Promise<void> {
  const admin = client(kafka).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Every message of a one-partition topic as key=value, read by kcat from the start. */
async function kcatConsume(kafka: KafkaBroker, topic: string, count: number): Promise<string[]> {
  const out = await kcat([
    '-C',
    '-b',
    kafka.bootstrap,
    '-t',
    topic,
    '-o',
    'beginning',
    '-c',
    String(count),
    '-e',
    '-q',
    '-f',
    '%k=%s\n',
  ]);
  return out.split('\n').filter(Boolean);
}

describe('startKafka (Apache Kafka, single-node KRaft)', () => {
  let kafka: KafkaBroker;

  beforeAll(async () => {
    kafka = await startKafka();
  });

  afterAll(async () => {
    const dir = kafka?.dataDir;
    await kafka?.remove();
    if (dir) expect(existsSync(dir)).toBe(false);
  });

  it('comes up on 127.0.0.1 with the cluster id it was formatted with; kcat lists the broker', async () => {
    expect(kafka.bootstrap).toBe(`127.0.0.1:${kafka.port}`);
    expect(kafka.brokers).toEqual([kafka.bootstrap]);
    const md = JSON.parse(await kcat(['-L', '-J', '-b', kafka.bootstrap])) as {
      brokers: { id: number; name: string }[];
    };
    expect(md.brokers).toEqual([{ id: 1, name: kafka.bootstrap }]);
    const admin = client(kafka).admin();
    await admin.connect();
    try {
      expect((await admin.describeCluster()).clusterId).toBe(kafka.clusterId);
      // pgferry creates its topics itself; a typo must not create one silently.
      await expect(admin.fetchTopicMetadata({ topics: ['never-created'] })).rejects.toThrow(
        'This server does not host this topic-partition',
      );
    } finally {
      await admin.disconnect();
    }
    expect(kafka.logTail(500)).toContain('Kafka Server started');
    expect(readFileSync(kafka.logFile, 'utf8')).not.toMatch(/SLF4J: (No|Failed|Defaulting)/);
  });

  it('kcat produces a message and consumes it back from a topic the test created', async () => {
    await createTopic(kafka, 'kcat-topic');
    await kcat(['-P', '-b', kafka.bootstrap, '-t', 'kcat-topic', '-k', 'k1'], 'hello from kcat\n');
    expect(await kcatConsume(kafka, 'kcat-topic', 1)).toEqual(['k1=hello from kcat']);
  });

  it('kafkajs produces and a consumer group consumes', async () => {
    await createTopic(kafka, 'kafkajs-topic');
    const k = client(kafka);
    const producer = k.producer();
    await producer.connect();
    await producer.send({ topic: 'kafkajs-topic', messages: [{ key: 'k2', value: 'hello from kafkajs' }] });
    await producer.disconnect();
    const consumer = k.consumer({ groupId: 'kafka-fixture-group' });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: 'kafkajs-topic', fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          seen.push(`${message.key?.toString()}=${message.value?.toString()}`);
        },
      });
      await waitFor(() => seen.length, { reason: 'the group consumer to get the message', timeout: 30_000 });
    } finally {
      await consumer.disconnect();
    }
    expect(seen).toEqual(['k2=hello from kafkajs']);
  });

  it('stop() leaves no JVM of the broker, and start() brings back what was produced', async () => {
    await createTopic(kafka, 'kept-topic');
    await kcat(['-P', '-b', kafka.bootstrap, '-t', 'kept-topic', '-k', 'a'], 'before stop\n');
    const pid = kafka.pid;
    expect(jvmsOf(kafka)).toEqual([pid]);
    await kafka.stop();
    expect(kafka.running).toBe(false);
    expect(processAlive(pid)).toBe(false);
    expect(jvmsOf(kafka)).toEqual([]);
    await expect(kcat(['-L', '-b', kafka.bootstrap, '-m', '2'])).rejects.toThrow();

    await kafka.start();
    expect(kafka.pid).not.toBe(pid);
    expect(await kcatConsume(kafka, 'kept-topic', 1)).toEqual(['a=before stop']);
  });

  it("kill('SIGKILL') and start() recover the broker with its data", async () => {
    await kcat(['-P', '-b', kafka.bootstrap, '-t', 'kept-topic', '-k', 'b'], 'before kill\n');
    expect(await kcatConsume(kafka, 'kept-topic', 2)).toEqual(['a=before stop', 'b=before kill']);
    const pid = kafka.pid;
    await kafka.kill('SIGKILL');
    expect((await kafka.exited()).signal).toBe('SIGKILL');
    expect(processAlive(pid)).toBe(false);
    expect(jvmsOf(kafka)).toEqual([]);

    await kafka.start();
    await kcat(['-P', '-b', kafka.bootstrap, '-t', 'kept-topic', '-k', 'c'], 'after kill\n');
    expect(await kcatConsume(kafka, 'kept-topic', 3)).toEqual([
      'a=before stop',
      'b=before kill',
      'c=after kill',
    ]);
  });

  it('fails to start on a taken port with the Kafka log tail in the error, and cleans up', async () => {
    let message = '';
    try {
      await startKafka({ port: kafka.port, readyTimeoutMs: 60_000 });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n')[0]).toMatch(
      new RegExp(
        `^Kafka on 127\\.0\\.0\\.1:${kafka.port} \\(data /tmp/pgferry-kafka-\\w+\\) did not start: Kafka exited \\(1\\)`,
      ),
    );
    expect(message).toMatch(/--- last 60 lines of \/tmp\/pgferry-kafka-\w+\/kafka\.log ---/);
    expect(message).toMatch(/--- errors logged by this start ---\n.*ERROR.*\n.*Address already in use/);
    const dir = /data (\/tmp\/pgferry-kafka-\w+)\)/.exec(message)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    // The broker that holds the port is untouched.
    expect(kafka.running).toBe(true);
  });
});
