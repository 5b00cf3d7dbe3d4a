import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startPostgres, waitFor, startTestBroker, type PgCluster, type TestBroker } from '@pgferry/testing';
import { ChangeEncoder, RegistryClient, buildSchemas } from '@pgferry/avro';
import { describeColumns } from '@pgferry/pg';
import { ControlStore, ensureControlSchema, recordStartOffsets, startRun } from '@pgferry/control';
import { kafkaClusterId } from '@pgferry/kafka';
import type { Applier } from './applier';
import { PerKeyApplier } from './per-key-applier';
import { SnapshotApplier } from './snapshot-applier';
import { TransactionalApplier } from './transactional-applier';

/**
 * Appliers bound to a task's run (RunRecords): every one refuses a record of another run or of
 * none, a Kafka the run does not keep its records in, and a partition without a start offset.
 */
describe('appliers bound to a run', () => {
  let pg: PgCluster;
  let broker: TestBroker;
  let kafka: Kafka;
  let producer: Producer;
  let encoder: ChangeEncoder;
  const RUN = 'aaaaaaaaaaaaaaaa';
  const seen = { sourceSystem: '1', sourceDatabase: 'src' };

  beforeAll(async () => {
    [pg, broker] = await Promise.all([startPostgres(), startTestBroker()]);
    await pg.query(`CREATE TABLE items (id int PRIMARY KEY, n int)`);
    const client = await pg.connect();
    await ensureControlSchema(client);
    const columns = await describeColumns(client, 'public', 'items', ['id']);
    await client.end();
    const registry = new RegistryClient(broker.registryUrl!);
    const schemas = buildSchemas('runs', 'public', 'items', columns);
    encoder = new ChangeEncoder(
      columns,
      schemas,
      {
        key: await registry.register('runs.items-key', schemas.key!),
        value: await registry.register('runs.items-value', schemas.value),
      },
      { name: 'runs', db: 'src', schema: 'public', table: 'items' },
    );
    kafka = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
    producer = kafka.producer();
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
    await broker?.close();
    await pg?.stop();
  });

  const config = () => ({ brokers: broker.brokers, clientId: 'run-records-test' });

  /** A task with its run, one-partition topics and their start offsets (the ends now). */
  async function task(name: string, opts: { cluster?: string; start?: boolean } = {}) {
    const topic = `runs.${name}.items`;
    const tx = `runs.${name}.transactions`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [topic, tx].map((t) => ({ topic: t, numPartitions: 1 })) });
    await admin.disconnect();
    const c = await pg.connect();
    await new ControlStore(c, name).registerTask({});
    await startRun(c, name, RUN, { ...seen, kafkaCluster: opts.cluster ?? (await kafkaClusterId(config())) });
    if (opts.start !== false)
      await recordStartOffsets(
        c,
        name,
        `g-${name}`,
        new Map([
          [`${topic}:0`, 0n],
          [`${tx}:0`, 0n],
        ]),
      );
    await c.end();
    return { topic, tx };
  }

  const record = (id: number, run: string | null, lsn: bigint) => {
    const r = encoder.encode('c', null, [String(id), '1'], [], { lsn, txId: 1, tsMs: Date.now() });
    const pos = Buffer.alloc(12);
    pos.writeBigUInt64BE(lsn, 0);
    pos.writeUInt32BE(1, 8);
    return {
      key: r.key,
      value: r.value,
      headers: { 'pgferry.pos': pos, ...(run ? { 'pgferry.run': run } : {}) },
    };
  };

  const common = (name: string) => ({
    kafka: config(),
    registry: new RegistryClient(broker.registryUrl!),
    connect: () => pg.connect(),
    group: `g-${name}`,
    task: name,
    targets: [{ topic: `runs.${name}.items`, schema: 'public', table: 'items', key: ['id'] }],
  });

  const appliers: Record<
    string,
    (name: string, destination: Awaited<ReturnType<PgCluster['connect']>>) => Applier
  > = {
    'per-key': (name) => new PerKeyApplier({ ...common(name), membership: 'exclusive' }),
    transactional: (name) =>
      new TransactionalApplier({ ...common(name), transactionsTopic: `runs.${name}.transactions` }),
    snapshot: (name, destination) => new SnapshotApplier({ ...common(name), destination }),
  };

  async function failure(make: (d: Awaited<ReturnType<PgCluster['connect']>>) => Applier): Promise<string> {
    const destination = await pg.connect();
    const applier = make(destination);
    try {
      await applier.start();
      await waitFor(() => applier.error, { reason: 'the applier to stop', timeout: 30_000 });
      return applier.error!.message;
    } catch (err) {
      return (err as Error).message;
    } finally {
      await applier.stop();
      await destination.end();
    }
  }

  it.each(Object.keys(appliers))('%s: refuses a record of another run, naming both runs', async (kind) => {
    const name = `foreign${kind.replace('-', '')}`;
    const { topic } = await task(name);
    await producer.send({ topic, acks: -1, messages: [record(1, 'bbbbbbbbbbbbbbbb', 100n)] });
    expect(await failure((d) => appliers[kind](name, d))).toBe(
      `Kafka topic ${topic} partition 0 offset 0: the record was written by run bbbbbbbbbbbbbbbb, not by task ${name}'s run ${RUN}; the applier stops rather than apply or skip it: the topic holds another run's records past this run's start offsets (something else writes to it, or the topic was shared with another task); give each task its own topics (kafka.topicPrefix) and start this one afresh into an empty destination`,
    );
    expect(await pg.query(`SELECT * FROM items`)).toEqual([]);
  });

  it('refuses a record without a run header', async () => {
    const { topic } = await task('headerless');
    await producer.send({ topic, acks: -1, messages: [record(2, null, 200n)] });
    expect(await failure(() => appliers['per-key']('headerless', null as never))).toContain(
      `Kafka topic ${topic} partition 0 offset 0: the record was written by no pgferry run (it has no pgferry.run header), not by task headerless's run ${RUN}`,
    );
  });

  it.each(Object.keys(appliers))('%s: refuses a Kafka the run does not keep its records in', async (kind) => {
    const name = `elsewhere${kind.replace('-', '')}`;
    await task(name, { cluster: 'another-cluster' });
    expect(await failure((d) => appliers[kind](name, d))).toMatch(
      new RegExp(
        `^task ${name} \\(run ${RUN}\\) keeps its records in Kafka cluster another-cluster; this Kafka is cluster \\S+, which does not hold them`,
      ),
    );
  });

  it('refuses a partition the run recorded no start offset for, instead of reading it from 0', async () => {
    await task('nostart', { start: false });
    expect(await failure(() => appliers['per-key']('nostart', null as never))).toBe(
      `task nostart (run ${RUN}) recorded no start offset for Kafka runs.nostart.items partition 0: the run did not create it (partitions added to the topic, or a topic created outside pgferry), so the applier cannot tell where the run's records begin there; remove the partitions, or start the task afresh into an empty destination`,
    );
  });

  it('applies the run’s own records from its start offsets, past an older run’s', async () => {
    const name = 'own';
    const topic = `runs.${name}.items`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    await admin.disconnect();
    // An older run's record, before this run started (real Kafka keeps topics between runs).
    await producer.send({ topic, acks: -1, messages: [record(50, 'cccccccccccccccc', 300n)] });
    const c = await pg.connect();
    await new ControlStore(c, name).registerTask({});
    await startRun(c, name, RUN, { ...seen, kafkaCluster: await kafkaClusterId(config()) });
    await recordStartOffsets(c, name, `g-${name}`, new Map([[`${topic}:0`, 1n]]));
    await c.end();
    await producer.send({ topic, acks: -1, messages: [record(51, RUN, 400n)] });
    const applier = appliers['per-key'](name, null as never);
    await applier.start();
    try {
      await waitFor(
        () => {
          if (applier.error) throw applier.error;
          return applier.positions.get(`${topic}:0`);
        },
        { reason: 'the applier to apply the run’s record', until: (o) => o === 2n, timeout: 30_000 },
      );
    } finally {
      await applier.stop();
    }
    expect(await pg.query(`SELECT id FROM items WHERE id >= 50`)).toEqual([{ id: 51 }]);
  });
});
