import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { avscOptions } from './avro-mapping';
import { ChangeEncoder, UNAVAILABLE_VALUE } from './change-encoder';
import { describeColumns } from '@pgferry/pg';
import { RecordDecoder } from './record-decoder';
import { RegistryClient } from './registry-client';
import { buildSchemas } from './table-schemas';

describe('change encoder: pgoutput text values -> Debezium envelope -> applier texts', () => {
  let pg: PgCluster;
  let kafka: EmbeddedKafka;
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-change-codec-'));
  let encoder: ChangeEncoder;
  let decoder: RecordDecoder;
  let valueType: avro.Type;
  let valueId: number;
  beforeAll(async () => {
    [pg, kafka] = await Promise.all([
      startPostgres(),
      startEmbeddedKafka({ dataDir, port: 0, registryPort: 0 }),
    ]);
    await pg.query(
      `CREATE TABLE "Order Lines" (id int, line int, doc text NOT NULL, note text, amount numeric(10,2) NOT NULL, at timestamp, PRIMARY KEY (id, line))`,
    );
    const client = await pg.connect();
    const columns = await describeColumns(client, 'public', 'Order Lines', ['id', 'line']);
    await client.end();
    const schemas = buildSchemas('pre', 'public', 'Order Lines', columns);
    const registry = new RegistryClient(kafka.registryUrl!);
    const ids = {
      key: await registry.register('ol-key', schemas.key!),
      value: await registry.register('ol-value', schemas.value),
    };
    encoder = new ChangeEncoder(columns, schemas, ids, {
      name: 'pre',
      db: 'postgres',
      schema: 'public',
      table: 'Order Lines',
    });
    decoder = new RecordDecoder(registry);
    valueType = avro.Type.forSchema(schemas.value as avro.Schema, avscOptions());
    valueId = ids.value;
  });
  afterAll(async () => {
    await kafka?.close();
    await pg?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("reads the envelope as the registry serves its schema without avsc (the applier's fast path)", async () => {
    expect(await decoder.readsWithoutAvsc(valueId)).toBe(true);
  });

  const meta = {
    lsn: 0x16b3748n,
    txId: 731,
    tsMs: 1_700_000_000_000,
    transaction: { id: '731:23803720', totalOrder: 2, dataCollectionOrder: 1 },
  };

  it('round-trips inserts, updates with a key change and deletes, with source position and transaction', async () => {
    const row = ['1', '2', 'big doc', 'tab\there', '12.50', '2024-02-29 12:00:00'];
    const c = encoder.encode('c', null, row, [], meta);
    expect(await decoder.decode(c.value)).toMatchObject({
      op: 'c',
      before: null,
      after: row,
      unchangedToast: [],
      source: { schema: 'public', table: 'Order Lines', lsn: 0x16b3748n, snapshot: 'false' },
    });
    const env = valueType.fromBuffer(c.value.subarray(5)) as {
      source: { txId: bigint };
      transaction: { id: string; total_order: bigint };
    };
    expect(env.source.txId).toBe(731n);
    expect(env.transaction).toMatchObject({ id: '731:23803720', total_order: 2n });

    const moved = ['1', '3', 'big doc', null, '12.50', null];
    const oldKey = ['1', '2', null, null, null, null];
    const u = await decoder.decode(encoder.encode('u', oldKey, moved, [], meta).value);
    expect(u.after).toEqual(moved);
    expect(u.before!.slice(0, 2)).toEqual(['1', '2']);

    const d = encoder.encode('d', oldKey, null, [], meta);
    expect(d.key).toEqual(encoder.encode('c', null, row, [], meta).key); // same key as the row's insert
    expect(await decoder.decode(d.value)).toMatchObject({ op: 'd', after: null });
  });

  it('marks an unchanged TOAST column instead of sending a value, with the Debezium marker where NULL is not allowed', async () => {
    const after = ['1', '2', null, null, '1.00', null];
    const u = encoder.encode('u', null, after, ['doc', 'note'], meta);
    const env = valueType.fromBuffer(u.value.subarray(5)) as {
      after: Record<string, unknown>;
      pgferry_unchanged_toast: string[];
    };
    expect(env.after.doc).toBe(UNAVAILABLE_VALUE);
    expect(env.after.note).toBeNull();
    expect(env.pgferry_unchanged_toast).toEqual(['doc', 'note']);
    expect((await decoder.decode(u.value)).unchangedToast).toEqual(['doc', 'note']);
  });

  it('encodes a truncate without key or images, and refuses a row of the wrong width', async () => {
    const t = encoder.encodeTruncate(meta);
    expect(t.key).toBeNull();
    expect(await decoder.decode(t.value)).toMatchObject({ op: 't', before: null, after: null });
    expect(() => encoder.encode('c', null, ['1'], [], meta)).toThrow(DataError);
    expect(() => encoder.encode('c', null, ['1'], [], meta)).toThrow(
      `c change of "public"."Order Lines": the change has 1 values, the table has 6 columns: the replication message does not match the table's Relation message`,
    );
  });
});
