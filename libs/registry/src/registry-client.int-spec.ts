import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { type SchemaRegistryServer, startSchemaRegistry } from './http-registry-server';
import { InMemorySchemaLog } from './schema-log';

const orderV1 = {
  type: 'record' as const,
  name: 'Order',
  namespace: 'shop',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'total', type: 'double' },
  ],
};
const orderV2 = {
  ...orderV1,
  fields: [...orderV1.fields, { name: 'note', type: ['null', 'string'], default: null }],
};
const orderIncompatible = {
  ...orderV1,
  fields: [...orderV1.fields, { name: 'customer', type: 'string' }],
};
const avro = (schema: object) => ({ type: SchemaType.AVRO as const, schema: JSON.stringify(schema) });

/** Reads what a fresh client (no cache) sees of the registry, through the public HTTP API. */
async function snapshot(url: string) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const get = async (path: string): Promise<any> => (await fetch(`${url}${path}`)).json();
  const subjects: string[] = await get('/subjects?deleted=true');
  const versions: Record<string, unknown[]> = {};
  const ids = new Set<number>();
  for (const subject of subjects) {
    const numbers: number[] = await get(`/subjects/${subject}/versions?deleted=true`);
    versions[subject] = [];
    for (const v of numbers) {
      const entry = await get(`/subjects/${subject}/versions/${v}?deleted=true`);
      versions[subject].push(entry);
      ids.add(entry.id);
    }
  }
  const schemas: Record<number, unknown> = {};
  for (const id of ids) schemas[id] = await get(`/schemas/ids/${id}`);
  const configs: Record<string, unknown> = { '': await get('/config') };
  for (const subject of subjects) configs[subject] = await get(`/config/${subject}`);
  return { subjects, live: await get('/subjects'), versions, schemas, configs };
}

describe('schema registry with the @kafkajs/confluent-schema-registry client', () => {
  let log: InMemorySchemaLog;
  let server: SchemaRegistryServer;
  let client: SchemaRegistry;

  beforeEach(async () => {
    log = new InMemorySchemaLog();
    server = await startSchemaRegistry({ port: 0, log });
    client = new SchemaRegistry({ host: server.url });
  });
  afterEach(async () => {
    await server.close();
  });

  it('registers, encodes in the Confluent wire format and decodes', async () => {
    const { id } = await client.register(avro(orderV1), { subject: 'shop.orders-value' });
    expect(id).toBe(1);
    expect(await client.getLatestSchemaId('shop.orders-value')).toBe(1);
    const payload = { id: 42, total: 9.5 };
    const message = await client.encode(id, payload);
    expect(message[0]).toBe(0);
    expect(message.readInt32BE(1)).toBe(id);
    const fresh = new SchemaRegistry({ host: server.url });
    expect(await fresh.decode(message)).toEqual(payload);
    // The client set the subject's level on first registration, as against Confluent.
    expect(await (await fetch(`${server.url}/config/shop.orders-value`)).json()).toEqual({
      compatibilityLevel: 'BACKWARD',
    });
  });

  it('evolves a schema and reads old messages with the new schema', async () => {
    const v1 = await client.register(avro(orderV1), { subject: 'orders-value' });
    const old = await client.encode(v1.id, { id: 1, total: 2 });
    const v2 = await client.register(avro(orderV2), { subject: 'orders-value' });
    expect(v2.id).toBe(2);
    expect(await client.getLatestSchemaId('orders-value')).toBe(2);
    expect(await client.getRegistryIdBySchema('orders-value', avro(orderV1))).toBe(1);
    const decoded = await client.decode(old, { [SchemaType.AVRO]: { readerSchema: orderV2 } });
    expect(decoded).toEqual({ id: 1, total: 2, note: null });
    // Registering v1 again is idempotent and the same schema under another subject keeps its id.
    expect((await client.register(avro(orderV1), { subject: 'orders-value' })).id).toBe(1);
    expect((await client.register(avro(orderV2), { subject: 'archive-value' })).id).toBe(2);
  });

  it('refuses an incompatible schema with 409', async () => {
    await client.register(avro(orderV1), { subject: 'orders-value' });
    const refusal = client.register(avro(orderIncompatible), { subject: 'orders-value' });
    await expect(refusal).rejects.toMatchObject({ status: 409 });
    await expect(refusal).rejects.toThrow(
      /incompatible with an earlier schema.*READER_FIELD_MISSING_DEFAULT_VALUE/,
    );
    expect(await client.getLatestSchemaId('orders-value')).toBe(1);
  });

  it('comes back after a restart with every subject, version, id and config', async () => {
    await client.register(avro(orderV1), { subject: 'orders-value' });
    await client.register(avro(orderV2), { subject: 'orders-value' });
    await client.register(avro(orderV1), { subject: 'refunds-value' });
    const { id: keyId } = await client.register(avro({ type: 'record', name: 'Key', fields: [] }), {
      subject: 'orders-key',
    });
    const encoded = await client.encode(keyId, {});
    const put = (path: string, body: object) =>
      fetch(`${server.url}${path}`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
        body: JSON.stringify(body),
      });
    await put('/config', { compatibility: 'FULL_TRANSITIVE' });
    await put('/config/refunds-value', { compatibility: 'NONE' });
    await fetch(`${server.url}/subjects/orders-value/versions/1`, { method: 'DELETE' });
    await fetch(`${server.url}/subjects/refunds-value`, { method: 'DELETE' });
    const before = await snapshot(server.url);
    expect(before.live).toEqual(['orders-key', 'orders-value']);

    await server.close();
    server = await startSchemaRegistry({ port: 0, log });
    const after = await snapshot(server.url);
    expect(after).toEqual(before);
    expect(after.configs['']).toEqual({ compatibilityLevel: 'FULL_TRANSITIVE' });
    expect(after.configs['refunds-value']).toEqual({ compatibilityLevel: 'NONE' });

    const restartedClient = new SchemaRegistry({ host: server.url });
    expect(await restartedClient.decode(encoded)).toEqual({});
    expect(await restartedClient.getLatestSchemaId('orders-value')).toBe(2);
    // New ids continue after the replayed ones.
    const next = await restartedClient.register(avro({ type: 'enum', name: 'Status', symbols: ['NEW'] }), {
      subject: 'status-value',
    });
    expect(next.id).toBe(4);
  });
});
