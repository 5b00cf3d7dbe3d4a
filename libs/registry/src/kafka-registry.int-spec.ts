import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { startTestBroker, waitFor, type TestBroker } from '@pgferry/testing';
import { startKafkaRegistry } from './kafka-schema-log';

const execFileP = promisify(execFile);
const MAIN = join(__dirname, '..', '..', '..', 'apps', 'controller', 'dist', 'main.js');

const order = (extra: object[] = []) => ({
  type: SchemaType.AVRO as const,
  schema: JSON.stringify({
    type: 'record',
    name: 'Order',
    namespace: 'shop',
    fields: [{ name: 'id', type: 'long' }, ...extra],
  }),
});

/** The `_schemas` records as kcat (librdkafka) reads them: Confluent's JSON keys and values. */
async function schemaRecords(
  broker: TestBroker,
  topic: string,
): Promise<Array<{ key: unknown; value: unknown }>> {
  const { stdout } = await execFileP(
    'kcat',
    ['-b', broker.brokers[0], '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%k\t%s\n'],
    { timeout: 30_000 },
  );
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [k, v] = line.split('\t');
      return { key: JSON.parse(k), value: v ? JSON.parse(v) : null };
    });
}

describe('schema registry over Kafka (the standalone `pgferry registry --kafka`)', () => {
  let broker: TestBroker;

  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it("keeps its schemas in a compacted topic in Confluent's layout, and serves them again after a restart", async () => {
    const topic = '_schemas_restart';
    const kafka = broker.client('registry-test');
    let registry = await startKafkaRegistry({ kafka, topic, port: 0 });
    let client = new SchemaRegistry({ host: registry.url });
    const v1 = await client.register(order(), { subject: 'shop.orders-value' });
    const v2 = await client.register(order([{ name: 'note', type: ['null', 'string'], default: null }]), {
      subject: 'shop.orders-value',
    });
    expect(v2.id).not.toBe(v1.id);
    await registry.close();

    const records = await schemaRecords(broker, topic);
    // The client sets the subject's compatibility when it registers (a CONFIG record).
    expect(records.map((r) => r.key)).toEqual([
      { keytype: 'SCHEMA', subject: 'shop.orders-value', version: 1, magic: 1 },
      { keytype: 'CONFIG', subject: 'shop.orders-value', magic: 0 },
      { keytype: 'SCHEMA', subject: 'shop.orders-value', version: 2, magic: 1 },
    ]);
    expect(records[0].value).toMatchObject({
      subject: 'shop.orders-value',
      version: 1,
      id: v1.id,
      deleted: false,
    });

    registry = await startKafkaRegistry({ kafka, topic, port: 0 });
    client = new SchemaRegistry({ host: registry.url });
    try {
      const byId = (await (await fetch(`${registry.url}/schemas/ids/${v2.id}`)).json()) as { schema: string };
      expect(JSON.parse(byId.schema).fields.map((f: { name: string }) => f.name)).toEqual(['id', 'note']);
      const latest = await (await fetch(`${registry.url}/subjects/shop.orders-value/versions/latest`)).json();
      expect(latest).toMatchObject({ version: 2, id: v2.id });
      // An incompatible change is refused whatever process registered the earlier versions.
      await expect(
        client.register(order([{ name: 'customer', type: 'string' }]), { subject: 'shop.orders-value' }),
      ).rejects.toThrow(/incompatible/i);
      // A new schema gets an id after every id the topic already holds.
      const other = await client.register(order([{ name: 'x', type: 'int', default: 0 }]), {
        subject: 'other-value',
      });
      expect(other.id).toBeGreaterThan(v2.id);
    } finally {
      await registry.close();
    }
    const described = await execFileP('kcat', ['-b', broker.brokers[0], '-L', '-t', topic, '-J'], {
      timeout: 30_000,
    });
    expect(JSON.parse(described.stdout).topics[0].partitions).toHaveLength(1);
  });

  it('runs as `pgferry registry --kafka` and stops on SIGTERM', async () => {
    const topic = '_schemas_cli';
    const child = spawn(
      process.execPath,
      [MAIN, 'registry', '--kafka', broker.brokers.join(','), '--port', '0', '--topic', topic],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const line = await waitFor(() => /schema registry (http:\/\/\S+),/.exec(out), {
        reason: 'the registry to print its URL',
        timeout: 60_000,
      });
      const client = new SchemaRegistry({ host: line![1] });
      const { id } = await client.register(order(), { subject: 'cli-value' });
      expect(out).toContain(`schemas in Kafka topic ${topic} of ${broker.brokers.join(',')}`);
      expect((await schemaRecords(broker, topic)).map((r) => r.value)).toEqual([
        expect.objectContaining({ subject: 'cli-value', id }),
        { compatibilityLevel: 'BACKWARD' },
      ]);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('refuses a broker address that is not host:port, naming it', async () => {
    const { stderr } = await execFileP(process.execPath, [MAIN, 'registry', '--kafka', 'nohost'], {
      timeout: 30_000,
    }).catch((e: { stderr: string }) => e);
    expect(stderr).toContain('Kafka broker address "nohost" is not host:port');
  });
});
