import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthenticationError, ObjectError } from '@pgferry/core';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { resolveEndpoint } from '@pgferry/pg';
import { PgSchemaMigrator } from './schema-migrator';
import { countByKind } from './schema-plan';
import type { SchemaMigratorOptions } from './types';

const SOURCE_DB = 'src "db"';
const FIXTURE = readFileSync(join(__dirname, 'fixtures', 'source-schema.sql'), 'utf8');

describe('PgSchemaMigrator against two real clusters', () => {
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

  const endpoint = (pg: PgCluster, database: string, password = pg.password) =>
    resolveEndpoint(
      { host: pg.host, port: pg.port, user: 'postgres', password, database, ssl: { mode: 'disable' } },
      'test',
    );

  async function migrator(db: string, extra: Partial<SchemaMigratorOptions> = {}) {
    await destination.createDatabase(db);
    const workDir = mkdtempSync(join(tmpdir(), 'pgferry-schema-'));
    workDirs.push(workDir);
    return new PgSchemaMigrator({
      source: endpoint(source, SOURCE_DB),
      destination: endpoint(destination, db),
      workDir,
      ...extra,
    });
  }

  const SCHEMAS = `('app', 'Sales Dept', 'sales')`;
  const catalog = async (pg: PgCluster, db: string) => ({
    tables: await pg.query(
      `SELECT table_schema, table_name, table_type FROM information_schema.tables
        WHERE table_schema IN ${SCHEMAS} ORDER BY 1, 2`,
      [],
      db,
    ),
    types: await pg.query(
      `SELECT n.nspname, t.typname, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname IN ${SCHEMAS} AND t.typtype IN ('e', 'd', 'c')
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') ORDER BY 1, 2`,
      [],
      db,
    ),
    functions: await pg.query(
      `SELECT p.oid::regprocedure::text AS f, l.lanname FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
        WHERE n.nspname IN ${SCHEMAS} ORDER BY 1`,
      [],
      db,
    ),
    sequences: await pg.query(
      `SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname IN ${SCHEMAS} ORDER BY 1, 2`,
      [],
      db,
    ),
    indexes: await pg.query(
      `SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname IN ${SCHEMAS} ORDER BY 1, 2, 3`,
      [],
      db,
    ),
    constraints: await pg.query(
      `SELECT conrelid::regclass::text AS rel, conname, contype, pg_get_constraintdef(oid) AS def
         FROM pg_constraint WHERE conrelid <> 0
          AND connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ${SCHEMAS}) ORDER BY 1, 2`,
      [],
      db,
    ),
    triggers: await pg.query(
      `SELECT tgrelid::regclass::text AS rel, tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2`,
      [],
      db,
    ),
  });

  it('restores pre-data without indexes, FKs and triggers, then post-data in parallel', async () => {
    const m = await migrator('dst full');
    const dump = await m.dump();
    expect(dump.alerts).toEqual([
      expect.objectContaining({ item: 'C-language function', object: 'app.cfunc()' }),
    ]);
    expect(dump.alerts[0].message).toBe(
      'function app.cfunc() is written in C (library $libdir/plpgsql) and does not belong to an extension, so it is not restored: install its shared library on the destination server and create the function there, or drop it from the source',
    );
    expect(dump.skipped.map((s) => s.object)).toEqual(
      expect.arrayContaining(['function app.cfunc()', 'COMMENT FUNCTION cfunc() in schema app']),
    );

    const pre = await m.restorePreData();
    expect(pre.counts).toMatchObject({
      SCHEMA: 2,
      EXTENSION: 1,
      TYPE: 2,
      DOMAIN: 1,
      FUNCTION: 2,
      SEQUENCE: 5,
      TABLE: 7,
      VIEW: 2,
      'MATERIALIZED VIEW': 1,
    });
    const src = await catalog(source, SOURCE_DB);
    let dst = await catalog(destination, 'dst full');
    expect(dst.tables).toEqual(src.tables);
    expect(dst.types).toEqual(src.types);
    expect(dst.sequences).toEqual(src.sequences);
    expect(dst.functions).toEqual(src.functions.filter((f) => f.f !== 'app.cfunc()'));
    expect(dst.indexes).toEqual([]);
    expect(dst.triggers).toEqual([]);
    expect(dst.constraints.map((c) => c.contype).sort()).toEqual(['c', 'c']);
    expect(await m.restorePreData()).toEqual(pre);

    // The data phase, simulated.
    await destination.query(
      `INSERT INTO app.customers (name, qty) VALUES ('  ada ', 1), ('bob', 2);
       INSERT INTO "Sales Dept"."Order ""Lines""" (customer_id) VALUES (1), (2);`,
      [],
      'dst full',
    );

    const post = await m.restorePostData();
    expect(post.counts).toMatchObject({
      CONSTRAINT: 8,
      'FK CONSTRAINT': 2,
      INDEX: 6,
      TRIGGER: 1,
      'MATERIALIZED VIEW DATA': 1,
    });
    dst = await catalog(destination, 'dst full');
    expect(dst.indexes).toEqual(src.indexes);
    expect(dst.constraints).toEqual(src.constraints);
    expect(dst.triggers).toEqual(src.triggers);
    expect(await destination.query('SELECT n FROM app.customer_count', [], 'dst full')).toEqual([{ n: '2' }]);
    await destination.query(`INSERT INTO app.customers (name) VALUES ('  eve ')`, [], 'dst full');
    expect(await destination.query(`SELECT name FROM app.customers WHERE id = 3`, [], 'dst full')).toEqual([
      { name: 'eve' },
    ]);

    const again = await m.restorePostData();
    // Entries without a catalog identity (INDEX ATTACH) are re-applied: ALTER INDEX ... ATTACH
    // PARTITION of an attached index does nothing.
    expect(again.counts).toEqual({ 'INDEX ATTACH': 4, 'MATERIALIZED VIEW DATA': 1 });
    expect(countByKind(again.skipped)).toEqual({ CONSTRAINT: 8, 'FK CONSTRAINT': 2, INDEX: 6, TRIGGER: 1 });
    expect(new Set(again.skipped.map((s) => s.reason))).toEqual(
      new Set(['exists on the destination (earlier run)']),
    );
  });

  it('migrates only the selected tables of a schema, minus the excluded ones', async () => {
    const m = await migrator('dst select', {
      objects: {
        include: [{ schema: 'app', tables: ['customers', 'measurements'] }, { schema: 'Sales Dept' }],
        exclude: [
          { schema: 'app', tables: ['measurements'] },
          { schema: 'Sales Dept', tables: ['línea_表', 'order summary'] },
        ],
      },
    });
    await m.dump();
    await m.restorePreData();
    await m.restorePostData();
    const dst = await catalog(destination, 'dst select');
    expect(dst.tables.map((t) => `${t.table_schema}.${t.table_name}`)).toEqual([
      'Sales Dept.Order "Lines"',
      'app.customers',
    ]);
    expect(dst.types.map((t) => t.typname)).toEqual(['mood', 'pair', 'posint']);
    expect(dst.sequences.map((s) => s.sequencename)).toEqual([
      'Invoice No',
      'Order "Lines"_id_seq',
      'customers_id_seq',
    ]);
    expect(dst.triggers.map((t) => t.tgname)).toEqual(['customers_touch']);
    expect(dst.constraints.map((c) => c.conname)).toEqual([
      'Order "Lines"_customer_id_fkey',
      'Order "Lines"_pkey',
      'positive "id"',
      'customers_name_check',
      'customers_pkey',
    ]);
  });

  it('maps schema and table names, references included', async () => {
    const m = await migrator('dst rename', {
      objects: {
        include: [
          { schema: 'app', renameTables: { customers: 'clients' } },
          { schema: 'Sales Dept', renameTo: 'sales', renameTables: { 'Order "Lines"': 'order_lines' } },
        ],
      },
    });
    await destination.query('CREATE EXTENSION pg_trgm', [], 'dst rename');
    const dump = await m.dump();
    expect(dump.renames).toEqual({
      schemas: [{ from: 'Sales Dept', to: 'sales' }],
      tables: [
        { schema: 'app', from: 'customers', to: 'clients', kind: 'r' },
        { schema: 'Sales Dept', from: 'Order "Lines"', to: 'order_lines', kind: 'r' },
      ],
    });
    const pre = await m.restorePreData();
    expect(pre.skipped.map((s) => `${s.object}: ${s.reason}`)).toEqual([
      'extension pg_trgm: exists on the destination; reused',
      'COMMENT EXTENSION pg_trgm: exists on the destination; reused',
    ]);
    await destination.query(
      `INSERT INTO app.clients (name) VALUES ('ada'); INSERT INTO sales.order_lines (customer_id) VALUES (1);`,
      [],
      'dst rename',
    );
    await m.restorePostData();
    const dst = await catalog(destination, 'dst rename');
    expect(dst.tables.map((t) => `${t.table_schema}.${t.table_name}`)).toEqual(
      expect.arrayContaining(['app.clients', 'sales.order_lines', 'sales.línea_表', 'sales.order summary']),
    );
    expect(dst.tables.some((t) => t.table_schema === 'Sales Dept' || t.table_name === 'customers')).toBe(
      false,
    );
    const fks = dst.constraints.filter((c) => c.contype === 'f').map((c) => `${c.rel}: ${c.def}`);
    expect(fks).toEqual([
      'sales."línea_表": FOREIGN KEY (order_id) REFERENCES sales.order_lines(id) ON DELETE CASCADE',
      'sales.order_lines: FOREIGN KEY (customer_id) REFERENCES app.clients(id)',
    ]);
    expect(dst.indexes.map((i) => `${i.tablename}.${i.indexname}`)).toContain('order_lines.idx "note"');
    expect(await destination.query('SELECT name FROM sales."order summary"', [], 'dst rename')).toEqual([
      { name: 'ada' },
    ]);
  });

  it('names the destination table that is in the way, and leaves nothing behind', async () => {
    const m = await migrator('dst conflict');
    await destination.query('CREATE SCHEMA app; CREATE TABLE app.customers (x int)', [], 'dst conflict');
    await m.dump();
    const err = await m.restorePreData().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^restoring pre-data into destination postgres@127\\.0\\.0\\.1:${destination.port}/dst conflict: table app\\.customers \\(TOC entry \\d+\\): relation "customers" already exists; the object already exists on the destination: drop or rename it there, map the migrated object to another name \\(objects\\.include\\[\\]\\.renameTo / renameTables\\), or exclude it from the task; statement: CREATE TABLE app\\.customers \\($`,
      ),
    );
    const left = await destination.query(
      `SELECT nspname FROM pg_namespace WHERE nspname IN ${SCHEMAS} ORDER BY 1`,
      [],
      'dst conflict',
    );
    expect(left).toEqual([{ nspname: 'app' }]);
  });

  it('reports a wrong source password without printing it', async () => {
    const m = await migrator('dst auth', { source: endpoint(source, SOURCE_DB, 'wrong-password-4711') });
    const err = await m.dump().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect((err as Error).message).toBe(
      `connecting to source postgres@127.0.0.1:${source.port}/${SOURCE_DB}: password authentication failed for user "postgres"; check the user name and password in the task spec`,
    );
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain('wrong-password-4711');
  });
});
