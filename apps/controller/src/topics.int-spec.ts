import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import { ConfigResourceTypes, Kafka, logLevel, type Admin } from 'kafkajs';
import {
  captureOutput,
  registerKafkajsLz4,
  startPostgres,
  startTestBroker,
  tableDigest,
  type PgCluster,
  type TestBroker,
} from '@pgferry/testing';
import { neededMessageBytes } from '@pgferry/kafka';
import { parseTaskSpec } from '@pgferry/core';
import { runMigrate } from './migrate-command';
import { precheckGate } from './check';

/**
 * A task's topics on a Kafka that outlives its runs (issue 18 item 3), on both brokers named
 * as kafka.brokers, as real Kafka is: pgferry never deletes a topic unless told to, refuses one
 * holding another run's records with one line, resets it with --reset-topics, creates its
 * topics with the configs replay needs (read back with kafkajs), and the precheck's Kafka
 * section says all of it before anything is written.
 */
describe('pgferry migrate: Kafka topics', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let broker: TestBroker;
  let kafka: Kafka;
  let admin: Admin;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-topics-'));
  beforeAll(async () => {
    [source, destination, broker] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
    ]);
    // Snapshot batches are LZ4-compressed: kafkajs reads them with a codec.
    registerKafkajsLz4();
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.disconnect();
    await broker?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function databases(name: string): Promise<{ s: Client; d: Client }> {
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    return { s: await source.connect(name), d: await destination.connect(name) };
  }

  function specFile(name: string, kafkaExtra: Record<string, unknown> = {}): string {
    const file = join(dir, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl, ...kafkaExtra },
      }),
    );
    return file;
  }

  /** Every record's offset and pgferry.run header of one partition-less topic, read with kafkajs. */
  async function runsOf(topic: string, expected: number): Promise<string[]> {
    const consumer = kafka.consumer({ groupId: `probe-${topic}-${Date.now()}` });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`read ${seen.length} of ${expected} records of ${topic}`)),
          60_000,
        );
        void consumer.run({
          eachMessage: async ({ message }) => {
            seen.push(message.headers?.['pgferry.run']?.toString() ?? '');
            if (seen.length >= expected) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    return seen;
  }

  const topicRecords = async (topic: string) =>
    (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);

  it("refuses a topic holding another run's records with one line and writes nothing; --reset-topics deletes and recreates it", async () => {
    const name = 'foreign';
    const { s, d } = await databases(name);
    await s.query(
      `CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 200) g`,
    );
    const topic = `pgferry.${name}.public.items`;
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'k', value: 'written by something else' }] });
    await producer.disconnect();
    const spec = specFile(name);
    const out = captureOutput();
    const refused = await runMigrate({ spec, workDir: join(dir, name), inProcess: true, out: out.out });
    expect(refused.code).toBe(1);
    const lines = out.text().split('\n');
    expect(lines.filter((l) => l.includes('kafka topics'))).toEqual([
      `  FAILED  kafka topics              Kafka topic ${topic} (1 records, of no pgferry run) holds records that are not of task ${name}'s new run, and pgferry never deletes topics by itself: run again with --reset-topics (kafka.resetTopics: true in the spec) to delete and recreate it, or give the task topics of its own with kafka.topicPrefix`,
    ]);
    expect(lines).toContain('nothing was written');
    // The foreign record is still there, and the destination holds nothing of the task.
    expect(await topicRecords(topic)).toBe(1);
    expect(
      (await d.query(`SELECT to_regclass('public.items') AS t, to_regclass('pgferry.tasks') AS c`)).rows,
    ).toEqual([{ t: null, c: null }]);

    const again = captureOutput();
    const done = await runMigrate({
      spec,
      workDir: join(dir, name),
      inProcess: true,
      resetTopics: true,
      out: again.out,
    });
    expect({ code: done.code, out: done.code ? again.text() : '' }).toEqual({ code: 0, out: '' });
    expect(again.text()).toContain(
      `topics       reset (--reset-topics): deleted and created again ${topic}, which held another run's records`,
    );
    expect(await tableDigest(d, 'public', 'items', ['id'])).toEqual(
      await tableDigest(s, 'public', 'items', ['id']),
    );
    // Only the run's records are in the topic now: 200 rows, each with its run header.
    expect(await topicRecords(topic)).toBe(200);
    expect(new Set(await runsOf(topic, 200))).toEqual(new Set([done.result!.runId]));
    await Promise.all([s.end(), d.end()]);
  }, 240_000);

  it('creates its topics kept whole, forever, sized for the widest row, with the replication the cluster allows', async () => {
    const name = 'configs';
    const { s, d } = await databases(name);
    await s.query(`CREATE TABLE docs (id int PRIMARY KEY, body text)`);
    await s.query(`INSERT INTO docs SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20) g`);
    await s.query(
      `INSERT INTO docs SELECT 100, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g`,
    );
    const done = await runMigrate({
      spec: specFile(name),
      workDir: join(dir, name),
      inProcess: true,
      out: captureOutput().out,
    });
    expect(done.code).toBe(0);
    const topic = `pgferry.${name}.public.docs`;
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    });
    const configs = Object.fromEntries(
      described.resources[0].configEntries.map((c) => [c.configName, c.configValue]),
    );
    // The widest row is 2 MiB of text: a change of it may carry it twice, plus headroom.
    const expectedMax = neededMessageBytes(2 * 1024 * 1024 + 4);
    expect(expectedMax).toBe(5 * 1024 * 1024);
    expect({
      cleanup: configs['cleanup.policy'],
      retention: configs['retention.ms'],
      retentionBytes: configs['retention.bytes'],
      max: configs['max.message.bytes'],
    }).toEqual({ cleanup: 'delete', retention: '-1', retentionBytes: '-1', max: String(expectedMax) });
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    // One broker: replication factor 1.
    expect(meta.topics[0].partitions.map((p) => p.replicas.length)).toEqual([1, 1, 1, 1]);
    expect(await tableDigest(d, 'public', 'docs', ['id'])).toEqual(
      await tableDigest(s, 'public', 'docs', ['id']),
    );
    await Promise.all([s.end(), d.end()]);
  }, 240_000);

  it("the precheck's Kafka section: broker, topics, a retention shorter than the task's, a topic too small for the widest row, and the embedded broker's disk", async () => {
    const name = 'prechk';
    const { s, d } = await databases(name);
    await s.query(
      `CREATE TABLE a (id int PRIMARY KEY, body text); CREATE TABLE b (id int PRIMARY KEY, body text)`,
    );
    await s.query(`INSERT INTO a SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 65536) g`);
    await s.query(`INSERT INTO b VALUES (1, 'small')`);
    const [ta, tb] = [`pgferry.${name}.public.a`, `pgferry.${name}.public.b`];
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: ta,
          numPartitions: 4,
          configEntries: [
            { name: 'max.message.bytes', value: '1048588' },
            { name: 'retention.ms', value: '-1' },
          ],
        },
        { topic: tb, numPartitions: 4, configEntries: [{ name: 'retention.ms', value: '3600000' }] },
      ],
    });
    const spec = parseTaskSpec({
      name,
      source: { url: source.url(name) },
      destination: { url: destination.url(name) },
      kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl },
    });
    const out = captureOutput();
    const gate = await precheckGate(spec, out.out, [], join(dir, name));
    expect(gate.mayStart).toBe(false);
    const kafkaItems = gate.report.items
      .filter((i) => i.id.startsWith('kafka:'))
      .map((i) => ({ id: i.id, level: i.level, message: i.message, fix: i.fix }));
    const fix = (t: string, c: string) =>
      `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${t} --add-config ${c}`;
    expect(kafkaItems).toEqual([
      {
        id: 'kafka:broker',
        level: 'passed',
        message: expect.stringMatching(
          new RegExp(
            `^reached Kafka ${broker.brokers[0]} \\(cluster .+, 1 broker\\): topics get replication factor 1$`,
          ),
        ),
        fix: undefined,
      },
      {
        id: 'kafka:topics',
        level: 'passed',
        message: `2 of the task's topics exist and hold only its run's records; 0 to create`,
        fix: undefined,
      },
      {
        id: `kafka:retention.ms:${tb}`,
        level: 'alert',
        message: `Kafka topic ${tb} keeps records for retention.ms 3600000, less than the task's forever (-1): records older than that are gone for a replay, and an applier stopped longer stops on the gap`,
        fix: fix(tb, 'retention.ms=-1'),
      },
      {
        id: `kafka:message-size:${ta}`,
        level: 'failed',
        message: `Kafka topic ${ta} has max.message.bytes 1048588, below the 5242880 the widest row needs: Kafka would refuse that row's record ("public"."a")`,
        fix: fix(ta, 'max.message.bytes=5242880'),
      },
    ]);
    expect(out.text()).toContain(
      'nothing was written'.length ? 'precheck failed: 1 item(s) must be fixed first' : '',
    );

    // The embedded broker (no kafka.brokers): migrate starts its own; its data dir's free disk.
    const embedded = parseTaskSpec({
      name,
      source: { url: source.url(name) },
      destination: { url: destination.url(name) },
    });
    const local = await precheckGate(embedded, captureOutput().out, [], join(dir, name));
    expect(
      local.report.items
        .filter((i) => i.id.startsWith('kafka:'))
        .map((i) => [i.id, i.level, i.message.split(':')[0]]),
    ).toEqual([
      ['kafka:broker', 'passed', 'embedded broker'],
      ['kafka:topics', 'passed', `0 of the task's topics exist and hold only its run's records; 2 to create`],
      [
        'kafka:retention',
        'passed',
        `the task's topics keep records forever (retention.ms -1), kept whole (not compacted), as a replay needs`,
      ],
      [
        'kafka:message-size',
        'passed',
        'the widest row ("public"."a") holds 2.0 MB; the table topics take records up to max.message.bytes 5242880',
      ],
      [
        'kafka:disk',
        'passed',
        expect.stringMatching(/ MB free for the embedded broker's data, more than twice the /),
      ],
    ]);
    await Promise.all([s.end(), d.end()]);
  }, 240_000);
});
