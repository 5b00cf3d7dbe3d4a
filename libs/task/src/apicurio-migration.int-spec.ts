import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTaskSpec } from '@pgferry/core';
import {
  type ApicurioRegistry,
  createAllTypes,
  type PgCluster,
  startApicurio,
  startPostgres,
  startTestBroker,
  tableDigest,
  type TestBroker,
} from '@pgferry/testing';
import { runFullMigration } from './phases/full-migration';

const SOURCE_DDL = `
  CREATE SCHEMA "Sales Dept";
  CREATE TABLE "Sales Dept"."Order ""Lines""" (order_id int, line int, amount numeric(12,2) NOT NULL, note text,
    PRIMARY KEY (order_id, line));
  INSERT INTO "Sales Dept"."Order ""Lines""" SELECT g / 3, g % 3, (g * 1.25)::numeric(12,2),
    CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\\t' || g END FROM generate_series(1, 20000) g;
  CREATE TABLE public.audit (happened timestamptz DEFAULT now(), what text);
  INSERT INTO public.audit (what) SELECT 'event ' || g FROM generate_series(1, 500) g;`;

/** The full migration (schema, snapshot through Kafka, post-data) with Apicurio as the registry. */
describe('full migration with Apicurio Registry as the schema registry', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let kafka: TestBroker;
  let apicurio: ApicurioRegistry;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-apicurio-full-'));
  beforeAll(async () => {
    [source, destination, kafka, apicurio] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
      startApicurio(),
    ]);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
  });
  afterAll(async () => {
    await Promise.all([kafka?.close(), apicurio?.stop(), source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves every table exactly, its schemas registered in Apicurio', async () => {
    const s = await source.connect('shop');
    await s.query(SOURCE_DDL);
    await createAllTypes(s, 'types', 'all_types');
    await s.query('ANALYZE');
    const spec = parseTaskSpec({
      name: 'apicurio_test',
      source: { url: source.url('shop') },
      destination: { url: destination.url('shop') },
      options: { chunkRows: 5000, snapshotWorkers: 2 },
    });
    const result = await runFullMigration({
      spec,
      kafka: { brokers: kafka.brokers, clientId: 'apicurio-migration-test' },
      registryUrl: apicurio.url,
      workDir: join(dir, 'work'),
    });
    expect(result.rowsCaptured).toBe(20000 + 500 + 4);
    const d = await destination.connect('shop');
    for (const [schema, table, key] of [
      ['Sales Dept', 'Order "Lines"', ['order_id', 'line']],
      ['public', 'audit', ['happened', 'what']],
      ['types', 'all_types', ['id']],
    ] as const) {
      expect({ table, ...(await tableDigest(d, schema, table, [...key])) }).toEqual({
        table,
        ...(await tableDigest(s, schema, table, [...key])),
      });
    }
    // The records went through Apicurio: a key and a value subject per keyed table, one version each.
    const subjects = ((await (await fetch(`${apicurio.url}/subjects`)).json()) as string[]).sort();
    expect(subjects.filter((x) => x.endsWith('-value'))).toHaveLength(3);
    expect(subjects.filter((x) => x.endsWith('-key'))).toHaveLength(2);
    for (const subject of subjects) {
      const versions = await (
        await fetch(`${apicurio.url}/subjects/${encodeURIComponent(subject)}/versions`)
      ).json();
      expect({ subject, versions }).toEqual({ subject, versions: [1] });
    }
    await s.end();
    await d.end();
  });
});
