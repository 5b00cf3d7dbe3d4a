import avro from 'avsc';
import { PgRowApplier } from '@pgferry/apply';
import { readChunk } from '@pgferry/capture';
import { PgferryError } from '@pgferry/core';
import { describeColumns, PIPELINE_SESSION_SQL, type ColumnInfo } from '@pgferry/pg';
import {
  type ApicurioRegistry,
  createAllTypes,
  type PgCluster,
  startApicurio,
  startPostgres,
  tableDigest,
} from '@pgferry/testing';
import { avscOptions } from './avro-mapping';
import { ChangeEncoder } from './change-encoder';
import { wireSchemaId } from './confluent-wire';
import { RecordDecoder } from './record-decoder';
import { RegistryClient } from './registry-client';
import { TableEncoder } from './table-codec';
import { buildSchemas, type TableSchemas } from './table-schemas';
import { tableTopic } from './topics';

/**
 * pgferry's registry client, schemas, encoders and decoders against Apicurio Registry's
 * Confluent-compatible API (ccompat v7) instead of pgferry's own registry.
 */
describe('pgferry against Apicurio Registry (Confluent-compatible API)', () => {
  let pg: PgCluster;
  let apicurio: ApicurioRegistry;
  beforeAll(async () => {
    [pg, apicurio] = await Promise.all([startPostgres(), startApicurio()]);
  });
  afterAll(async () => {
    await Promise.all([apicurio?.stop(), pg?.stop()]);
  });

  const source = (schema: string, table: string) => ({ name: 'pgferry', db: 'postgres', schema, table });
  async function register(client: RegistryClient, subject: string, schemas: TableSchemas) {
    return {
      key: schemas.key ? await client.register(`${subject}-key`, schemas.key) : null,
      value: await client.register(`${subject}-value`, schemas.value),
    };
  }
  /** A schema with every name resolved to its full name, attributes kept: equal means the same schema. */
  const resolved = (schema: Record<string, unknown>) =>
    avro.Type.forSchema(schema as avro.Schema, avscOptions()).schema({ exportAttrs: true });
  const pgNames = (envelope: Record<string, unknown>) => {
    const before = (envelope.fields as Array<{ type: unknown[] }>)[0].type[1] as {
      fields: Array<Record<string, unknown>>;
    };
    return before.fields.map((f) => f['pg.name']);
  };
  async function versions(subject: string): Promise<unknown> {
    return (await fetch(`${apicurio.url}/subjects/${encodeURIComponent(subject)}/versions`)).json();
  }

  it('registers every type pgferry maps, gives the same id again, and carries the rows exactly', async () => {
    const src = await pg.connect();
    await src.query(PIPELINE_SESSION_SQL);
    const fixture = await createAllTypes(src, 'Types "src"', 'All Types');
    await src.query(`CREATE TABLE "Types ""src"""."copy" (LIKE "Types ""src"""."All Types" INCLUDING ALL)`);
    const columns = await describeColumns(src, fixture.schema, fixture.table, ['id']);
    const schemas = buildSchemas('pgferry', fixture.schema, fixture.table, columns);
    const subject = tableTopic('pgferry', fixture.schema, fixture.table);
    const ids = await register(new RegistryClient(apicurio.url), subject, schemas);
    // A fresh client (no cache) registering the same schemas gets the same ids: one version each.
    expect(await register(new RegistryClient(apicurio.url), subject, schemas)).toEqual(ids);
    expect(await versions(`${subject}-value`)).toEqual([1]);
    // Apicurio gives back the same schemas, "pg.name" and logical types included, though printed
    // as Java's Avro prints them: a name in the enclosing namespace without it ("Value").
    const reader = new RegistryClient(apicurio.url);
    const served = await reader.schema(ids.value);
    expect(JSON.stringify(served)).toContain('"after","type":["null","Value"]');
    expect(resolved(served)).toEqual(resolved(schemas.value));
    // avsc exports no field attributes: the columns' "pg.name" are checked on their own.
    expect(pgNames(served)).toEqual(columns.map((c) => c.name));
    expect(resolved(await reader.schema(ids.key!))).toEqual(resolved(schemas.key!));

    const encoder = new TableEncoder(columns, schemas, ids, source(fixture.schema, fixture.table));
    const values: Buffer[] = [];
    const plan = { schema: fixture.schema, table: fixture.table, readSchema: fixture.schema };
    await readChunk(
      src,
      { ...plan, readTable: fixture.table, loPage: 0, hiPage: null, estimatedRows: 4 },
      columns.map((c) => c.name),
      null,
      async (rows) => {
        for (let i = 0; i < rows.length; i++) {
          const line = rows.bufs[i].subarray(rows.starts[i], rows.ends[i]);
          values.push(encoder.encodeRead(line, Date.now(), false).value);
        }
      },
    );
    expect(values).toHaveLength(fixture.rowCount);
    expect(values.map((v) => wireSchemaId(v))).toEqual(values.map(() => ids.value));
    const decoded = await Promise.all(values.map((v) => new RecordDecoder(reader).decode(v)));
    expect(decoded[0].columns).toEqual(columns.map((c) => c.name));
    const dst = await pg.connect();
    await dst.query(PIPELINE_SESSION_SQL);
    await new PgRowApplier(dst).applyRows(
      { schema: fixture.schema, table: 'copy', columns: decoded[0].columns, key: ['id'] },
      decoded.map((d) => d.after!),
      null,
    );
    expect(await tableDigest(src, fixture.schema, 'copy', ['id'])).toEqual(
      await tableDigest(src, fixture.schema, fixture.table, ['id']),
    );
    await Promise.all([src.end(), dst.end()]);
  });

  it("names the fix when pointed at Apicurio's root instead of its Confluent-compatible API", async () => {
    const wrong = new RegistryClient(apicurio.baseUrl);
    const refused = wrong.register('t-value', { type: 'record', name: 'T', fields: [] });
    await expect(refused).rejects.toMatchObject({ code: '404', retriable: false });
    await expect(refused).rejects.toThrow(
      `${apicurio.baseUrl} is not the root of a Confluent-compatible registry API: set schemaRegistryUrl to it (Apicurio Registry 3: http://HOST:PORT/apis/ccompat/v7)`,
    );
  });

  it('evolves a table: a column added with a default is a new version, a required one is refused', async () => {
    const db = await pg.connect();
    await db.query(`CREATE TABLE public.orders (id bigint PRIMARY KEY, total numeric(10,2) NOT NULL)`);
    const subject = tableTopic('pgferry', 'public', 'orders');
    // Apicurio's default level is NONE; a Confluent registry's (and pgferry's) is BACKWARD.
    const put = await fetch(`${apicurio.url}/config/${encodeURIComponent(`${subject}-value`)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'BACKWARD' }),
    });
    expect(put.status).toBe(200);
    const client = new RegistryClient(apicurio.url);
    const encoderOf = async (columns: ColumnInfo[]) => {
      const schemas = buildSchemas('pgferry', 'public', 'orders', columns);
      return new ChangeEncoder(
        columns,
        schemas,
        await register(client, subject, schemas),
        source('public', 'orders'),
      );
    };
    const meta = { lsn: 0x1000n, txId: 7, tsMs: 1_700_000_000_000 };
    const v1 = await encoderOf(await describeColumns(db, 'public', 'orders', ['id']));
    const old = v1.encode('c', null, ['1', '9.50'], [], meta).value;

    await db.query(`ALTER TABLE public.orders ADD COLUMN note text DEFAULT 'none'`);
    const v2 = await encoderOf(await describeColumns(db, 'public', 'orders', ['id']));
    const current = v2.encode('c', null, ['2', '3.25', 'gift'], [], meta).value;
    expect(wireSchemaId(current)).not.toBe(wireSchemaId(old));
    expect(await versions(`${subject}-value`)).toEqual([1, 2]);
    // Each record decodes through the id it carries, with its own writer's columns.
    const decoder = new RecordDecoder(new RegistryClient(apicurio.url));
    expect(await decoder.decode(old)).toMatchObject({ columns: ['id', 'total'], after: ['1', '9.50'] });
    expect(await decoder.decode(current)).toMatchObject({
      columns: ['id', 'total', 'note'],
      after: ['2', '3.25', 'gift'],
    });

    // NOT NULL gives the Avro field no default: readers of the new schema cannot read old records.
    await db.query(`ALTER TABLE public.orders ADD COLUMN qty int NOT NULL DEFAULT 1`);
    const refused = encoderOf(await describeColumns(db, 'public', 'orders', ['id']));
    await expect(refused).rejects.toBeInstanceOf(PgferryError);
    await expect(refused).rejects.toMatchObject({ code: '409', retriable: false });
    await expect(refused).rejects.toThrow(
      new RegExp(`^schema registry POST /subjects/${subject}-value/versions: 409 \\S`),
    );
    expect(await versions(`${subject}-value`)).toEqual([1, 2]);
    await db.end();
  });
});
