import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel } from 'kafkajs';
import { startEmbeddedKafka, type EmbeddedKafka } from './start-embedded-kafka';
import { SCHEMAS_TOPIC } from './broker-schema-log';

const v1 = {
  type: 'record',
  name: 'Order',
  namespace: 'pgferry.test',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'note', type: ['null', 'string'], default: null },
  ],
};
const v2 = { ...v1, fields: [...v1.fields, { name: 'qty', type: 'int', default: 1 }] };
const incompatible = { ...v1, fields: [{ name: 'id', type: 'string' }] };

describe('startEmbeddedKafka: broker and schema registry together', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-embedded-'));
  let kafka: EmbeddedKafka | undefined;
  afterAll(async () => {
    await kafka?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('registers, encodes and decodes with the Confluent client, refuses an incompatible schema, and keeps schemas across a restart', async () => {
    kafka = await startEmbeddedKafka({ dataDir, port: 0, registryPort: 0 });
    const registry = new SchemaRegistry({ host: kafka.registryUrl! });
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(v1) },
      { subject: 'shop.orders-value' },
    );
    const encoded = await registry.encode(id, { id: 7, note: 'first' });
    expect(encoded[0]).toBe(0);
    expect(encoded.readInt32BE(1)).toBe(id);
    expect(await registry.decode(encoded)).toEqual({ id: 7, note: 'first' });
    const second = await registry.register(
      { type: SchemaType.AVRO, schema: JSON.stringify(v2) },
      { subject: 'shop.orders-value' },
    );
    expect(second.id).not.toBe(id);
    await expect(
      registry.register(
        { type: SchemaType.AVRO, schema: JSON.stringify(incompatible) },
        { subject: 'shop.orders-value' },
      ),
    ).rejects.toThrow(/incompatible|409/i);

    // Records sent through Kafka with the wire format decode on the other side.
    const client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
    const producer = client.producer();
    await producer.connect();
    await producer.send({
      topic: 'shop.orders',
      messages: [{ value: await registry.encode(second.id, { id: 8, note: null, qty: 3 }) }],
    });
    await producer.disconnect();

    const brokerPort = kafka.broker.port;
    const registryPort = kafka.registry!.port;
    await kafka.close();
    kafka = await startEmbeddedKafka({ dataDir, port: brokerPort, registryPort });
    const again = new SchemaRegistry({ host: kafka.registryUrl! });
    expect(await again.getLatestSchemaId('shop.orders-value')).toBe(second.id);
    expect(await again.decode(encoded)).toEqual({ id: 7, note: 'first' });
    const versions = await (await fetch(`${kafka.registryUrl}/subjects/shop.orders-value/versions`)).json();
    expect(versions).toEqual([1, 2]);

    // The schemas live in the compacted _schemas topic, readable by any Kafka client.
    const admin = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const [offsets] = await admin.fetchTopicOffsets(SCHEMAS_TOPIC);
    const configs = await admin.describeConfigs({
      resources: [{ type: 2, name: SCHEMAS_TOPIC }],
      includeSynonyms: false,
    });
    await admin.disconnect();
    // Two schema versions and the subject config that the Confluent client sets on register.
    expect(Number(offsets.high)).toBe(3);
    expect(
      configs.resources[0].configEntries.find((c) => c.configName === 'cleanup.policy')?.configValue,
    ).toBe('compact');
  });

  it('keeps its data private: the data dir and every directory in it 0700, every file 0600', async () => {
    const privateDir = mkdtempSync(join(tmpdir(), 'pgferry-embedded-modes-'));
    chmodSync(privateDir, 0o755); // as a data dir an older version created
    const broker = await startEmbeddedKafka({ dataDir: privateDir, port: 0, registryPort: 0 });
    try {
      const client = new Kafka({ brokers: broker.brokers, logLevel: logLevel.NOTHING });
      const producer = client.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({
        topic: 'shop.customers',
        messages: [{ key: 'k', value: 'a full copy of a row' }],
      });
      await producer.disconnect();
      await new SchemaRegistry({ host: broker.registryUrl! }).register(
        { type: SchemaType.AVRO, schema: JSON.stringify(v1) },
        { subject: 'shop.customers-value' },
      );
    } finally {
      await broker.close();
    }
    const walk = (dir: string): Array<{ path: string; mode: string }> => [
      { path: dir, mode: (statSync(dir).mode & 0o777).toString(8) },
      ...readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? walk(join(dir, e.name))
          : [{ path: join(dir, e.name), mode: (statSync(join(dir, e.name)).mode & 0o777).toString(8) }],
      ),
    ];
    const entries = walk(privateDir);
    expect(entries.some((e) => e.path.includes('shop.customers') && e.path.endsWith('.log'))).toBe(true);
    expect(entries.filter((e) => e.mode !== (statSync(e.path).isDirectory() ? '700' : '600'))).toEqual([]);
    rmSync(privateDir, { recursive: true, force: true });
  });
});
