import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataError, PgferryError } from '@pgferry/core';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { resolveEndpoint } from '@pgferry/pg';
import { PgToolError } from './pg-restore-errors';
import { PgSchemaMigrator } from './schema-migrator';
import type { SchemaMigratorOptions } from './types';

const SOURCE_DB = 'shop';
const FIXTURE = `
  CREATE SCHEMA shop;
  CREATE TABLE shop.gadgets (id int PRIMARY KEY, label text UNIQUE);
  CREATE TABLE shop.parts (id int PRIMARY KEY, gadget_id int REFERENCES shop.gadgets (id));
  CREATE INDEX parts_gadget ON shop.parts (gadget_id);
  CREATE INDEX gadgets_lower_label ON shop.gadgets (lower(label));
  CREATE TABLE public.settings (k text PRIMARY KEY, v text);
  COMMENT ON SCHEMA public IS 'source public';
`;

describe('post-data failures, resumption, and the public schema', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const workDirs: string[] = [];

  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres(), startPostgres()]);
    await source.createDatabase(SOURCE_DB);
    await source.query(FIXTURE, [], SOURCE_DB);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
  });

  const endpoint = (pg: PgCluster, database: string) =>
    resolveEndpoint(
      {
        host: pg.host,
        port: pg.port,
        user: 'postgres',
        password: pg.password,
        database,
        ssl: { mode: 'disable' },
      },
      'test',
    );

  async function migrator(db: string, extra: Partial<SchemaMigratorOptions> = {}) {
    await destination.createDatabase(db);
    const workDir = mkdtempSync(join(tmpdir(), 'pgferry-schema-'));
    workDirs.push(workDir);
    const options = {
      source: endpoint(source, SOURCE_DB),
      destination: endpoint(destination, db),
      workDir,
      ...extra,
    };
    return { m: new PgSchemaMigrator(options), options };
  }

  const postDataObjects = (db: string) =>
    destination.query(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'shop' AND c.relkind = 'i'
       UNION ALL SELECT conname FROM pg_constraint WHERE connamespace = 'shop'::regnamespace AND contype <> 'c'
       ORDER BY 1`,
      [],
      db,
    );

  it('refuses post-data before pre-data', async () => {
    const { m } = await migrator('dst order', { objects: { include: [{ schema: 'shop' }] } });
    await m.dump();
    const err = await m.restorePostData().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgferryError);
    expect((err as PgferryError).code).toBe('SCHEMA_STEP_ORDER');
  });

  it('stops at the first failing object, naming it, and builds only what is missing when run again', async () => {
    const { m } = await migrator('dst resume', { objects: { include: [{ schema: 'shop' }] }, jobs: 3 });
    await m.dump();
    await m.restorePreData();
    await destination.query(
      `INSERT INTO shop.gadgets VALUES (1, 'x'), (2, 'x'); INSERT INTO shop.parts VALUES (1, 1)`,
      [],
      'dst resume',
    );
    const err = await m.restorePostData().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^restoring post-data into destination postgres@127\\.0\\.0\\.1:${destination.port}/dst resume: table constraint gadgets_label_key on shop\\.gadgets \\(TOC entry \\d+\\): could not create unique index "gadgets_label_key" \\(Key \\(label\\)=\\(x\\) is duplicated\\.\\); fix the object on the source or the destination and run the step again; statement: ALTER TABLE ONLY shop\\.gadgets$`,
      ),
    );
    expect((err as Error).cause).toBeInstanceOf(PgToolError);

    const before = (await postDataObjects('dst resume')).map((r) => r.name);
    await destination.query(`UPDATE shop.gadgets SET label = 'y' WHERE id = 2`, [], 'dst resume');
    const resumed = await m.restorePostData();
    const after = (await postDataObjects('dst resume')).map((r) => r.name);
    expect(after).toEqual([
      'gadgets_label_key',
      'gadgets_label_key',
      'gadgets_lower_label',
      'gadgets_pkey',
      'gadgets_pkey',
      'parts_gadget',
      'parts_gadget_id_fkey',
      'parts_pkey',
      'parts_pkey',
    ]);
    // What existed after the failure is skipped, everything else is built: nothing twice.
    const skippedNames = resumed.skipped.map((s) =>
      /^(?:table constraint (\S+) on|index shop\.(\S+))/.exec(s.object)!,
    );
    expect(skippedNames.map((x) => x[1] ?? x[2]).sort()).toEqual([...new Set(before)].sort());
    expect(before).not.toContain('gadgets_label_key');
    const restored = Object.values(resumed.counts).reduce((a, b) => a + b, 0);
    expect(restored + resumed.skipped.length).toBe(6);
  });

  it('reuses an existing public schema and maps another schema onto it', async () => {
    const { m } = await migrator('dst public', {
      objects: { include: [{ schema: 'public' }, { schema: 'shop', renameTo: 'public' }] },
    });
    const err = await m.dump().catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'task spec: objects.include[1].renameTo: schema "shop" and "public" would both become "public"',
    );

    const { m: merge } = await migrator('dst merge', {
      objects: { include: [{ schema: 'shop', renameTo: 'public' }] },
    });
    await merge.dump();
    const pre = await merge.restorePreData();
    expect(pre.skipped.map((s) => `${s.object}: ${s.reason}`)).toEqual([
      'schema public: exists on the destination; reused',
      'COMMENT SCHEMA public: exists on the destination; reused',
    ]);
    await merge.restorePostData();
    const tables = await destination.query(
      `SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('public', 'shop') ORDER BY 2`,
      [],
      'dst merge',
    );
    expect(tables).toEqual([
      { table_schema: 'public', table_name: 'gadgets' },
      { table_schema: 'public', table_name: 'parts' },
    ]);
    const fk = await destination.query(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'parts_gadget_id_fkey'`,
      [],
      'dst merge',
    );
    expect(fk).toEqual([{ def: 'FOREIGN KEY (gadget_id) REFERENCES gadgets(id)' }]);

    const { m: pub } = await migrator('dst pub', { objects: { include: [{ schema: 'public' }] } });
    await pub.dump();
    const prePub = await pub.restorePreData();
    expect(prePub.counts).toEqual({ TABLE: 1 });
    expect(prePub.skipped.map((s) => `${s.object}: ${s.reason}`)).toEqual([
      'schema public: exists on the destination; reused',
      'COMMENT SCHEMA public: exists on the destination; reused',
    ]);
  });

  it('dumps the schema as of an exported snapshot', async () => {
    const holder = await source.connect(SOURCE_DB);
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const [{ snapshot }] = (await holder.query('SELECT pg_export_snapshot() AS snapshot')).rows;
      await source.query('CREATE TABLE shop.late (id int PRIMARY KEY)', [], SOURCE_DB);
      const { m } = await migrator('dst snapshot', { objects: { include: [{ schema: 'shop' }] }, snapshot });
      const dump = await m.dump();
      expect(dump.counts.TABLE).toBe(2);
      const { m: now } = await migrator('dst now', { objects: { include: [{ schema: 'shop' }] } });
      expect((await now.dump()).counts.TABLE).toBe(3);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
      await source.query('DROP TABLE shop.late', [], SOURCE_DB);
    }
  });
  it('builds the post-data indexes with maintenance_work_mem raised to the option, never lowered', async () => {
    // The index calls a function that fails unless the build runs with the expected setting.
    await source.createDatabase('memory');
    await source.query(
      `CREATE FUNCTION public.check_memory(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
       BEGIN
         IF current_setting('maintenance_work_mem') IS DISTINCT FROM current_setting('pgferry_test.expect', true) THEN
           RAISE EXCEPTION 'the index was built with maintenance_work_mem %', current_setting('maintenance_work_mem');
         END IF;
         RETURN v;
       END $$;
       CREATE TABLE public.measured (id int);
       INSERT INTO public.measured VALUES (1);
       SET pgferry_test.expect = '64MB';
       CREATE INDEX measured_check ON public.measured (public.check_memory(id));`,
      [],
      'memory',
    );
    const run = async (db: string, settings: string[], maintenanceWorkMemMB?: number) => {
      await destination.createDatabase(db);
      for (const setting of settings) await destination.query(`ALTER DATABASE "${db}" SET ${setting}`);
      const workDir = mkdtempSync(join(tmpdir(), 'pgferry-schema-'));
      workDirs.push(workDir);
      const m = new PgSchemaMigrator({
        source: endpoint(source, 'memory'),
        destination: endpoint(destination, db),
        workDir,
        maintenanceWorkMemMB,
      });
      await m.dump();
      await m.restorePreData();
      await destination.query('INSERT INTO public.measured VALUES (1), (2)', [], db);
      return m.restorePostData();
    };
    expect((await run('mem raised', [`pgferry_test.expect = '300MB'`], 300)).counts).toEqual({ INDEX: 1 });
    expect(
      (await run('mem kept', [`maintenance_work_mem = '1GB'`, `pgferry_test.expect = '1GB'`], 300)).counts,
    ).toEqual({ INDEX: 1 });
    // Without the option the server's setting stays, which the function refuses here.
    await expect(run('mem default', [`pgferry_test.expect = '300MB'`])).rejects.toThrow(
      'the index was built with maintenance_work_mem 64MB',
    );
  });
});
