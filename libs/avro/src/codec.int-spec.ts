import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import { createAllTypes, startPostgres, tableDigest, type PgCluster } from '@pgferry/testing';
import { readChunk } from '@pgferry/capture';
import { PIPELINE_SESSION_SQL, describeColumns } from '@pgferry/pg';
import { PgRowApplier } from '@pgferry/apply';
import { RecordDecoder } from './record-decoder';
import { RegistryClient } from './registry-client';
import { TableEncoder } from './table-codec';
import { buildSchemas } from './table-schemas';

describe('row codec: COPY text -> Avro (Confluent wire format) -> COPY text', () => {
  let pg: PgCluster;
  let kafka: EmbeddedKafka;
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-codec-'));
  beforeAll(async () => {
    [pg, kafka] = await Promise.all([
      startPostgres(),
      startEmbeddedKafka({ dataDir, port: 0, registryPort: 0 }),
    ]);
  });
  afterAll(async () => {
    await kafka?.close();
    await pg?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('carries every type of the all-types table exactly', async () => {
    const src = await pg.connect();
    const dst = await pg.connect();
    await src.query(PIPELINE_SESSION_SQL);
    const fixture = await createAllTypes(src, 'Types "src"', 'All Types');
    await src.query(`CREATE TABLE "Types ""src"""."copy" (LIKE "Types ""src"""."All Types" INCLUDING ALL)`);
    const columns = await describeColumns(src, fixture.schema, fixture.table, ['id']);
    expect(columns.map((c) => c.name)).toEqual(fixture.columns.map((c) => c.name));
    const schemas = buildSchemas('pgferry', fixture.schema, fixture.table, columns);
    const registry = new RegistryClient(kafka.registryUrl!);
    const ids = {
      key: await registry.register('t-key', schemas.key!),
      value: await registry.register('t-value', schemas.value),
    };
    const encoder = new TableEncoder(columns, schemas, ids, {
      name: 'pgferry',
      db: 'postgres',
      schema: fixture.schema,
      table: fixture.table,
    });
    const values: Buffer[] = [];
    const keys: Buffer[] = [];
    await readChunk(
      src,
      {
        schema: fixture.schema,
        table: fixture.table,
        readSchema: fixture.schema,
        readTable: fixture.table,
        loPage: 0,
        hiPage: null,
        estimatedRows: 4,
      },
      columns.map((c) => c.name),
      null,
      async (rows) => {
        for (let i = 0; i < rows.length; i++) {
          const m = encoder.encodeRead(
            rows.bufs[i].subarray(rows.starts[i], rows.ends[i]),
            Date.now(),
            false,
          );
          values.push(m.value);
          keys.push(m.key!);
        }
      },
    );
    expect(values).toHaveLength(4);
    const decoder = new RecordDecoder(new RegistryClient(kafka.registryUrl!));
    const decoded = await Promise.all(values.map((v) => decoder.decode(v)));
    expect(decoded[0].op).toBe('r');
    expect(decoded[0].columns).toEqual(columns.map((c) => c.name));
    await dst.query(PIPELINE_SESSION_SQL);
    const applier = new PgRowApplier(dst);
    await applier.applyRows(
      { schema: fixture.schema, table: 'copy', columns: decoded[0].columns, key: ['id'] },
      decoded.map((d) => d.after!),
      null,
    );
    // Applying the same rows again changes nothing (idempotent by key).
    await applier.applyRows(
      { schema: fixture.schema, table: 'copy', columns: decoded[0].columns, key: ['id'] },
      decoded.map((d) => d.after!),
      null,
    );
    const a = await tableDigest(src, fixture.schema, fixture.table, ['id']);
    const b = await tableDigest(src, fixture.schema, 'copy', ['id']);
    expect(b).toEqual(a);
    // Consumers see native Avro values for the common types.
    const typical = decoded.find((d) => d.after![0] === '1')!;
    const col = (name: string) => typical.after![typical.columns.indexOf(name)];
    expect(col('c_int8')).toBe('42');
    expect(col('c_numeric_scaled')).toBe('12345678.1234');
    expect(col('c_date')).toBe('2024-02-29');
    await src.end();
    await dst.end();
  });
});
