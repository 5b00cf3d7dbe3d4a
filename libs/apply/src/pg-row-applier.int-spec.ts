import type { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { ControlStore, ensureControlSchema, readOffsets } from '@pgferry/control';
import { hasUniqueIndexOn } from './pg-apply-session';
import { PgRowApplier, type DeferredKeys, type TargetTable } from './pg-row-applier';

describe('PgRowApplier: direct COPY, and the staged upsert when a key is there already', () => {
  let pg: PgCluster;
  let db: Client;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.query(`CREATE TABLE kv (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, n int);
      CREATE TABLE kv2 (id int PRIMARY KEY, v text);
      CREATE TABLE deferred (id int, v text, CONSTRAINT deferred_key UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TABLE nokey (a int, b text);
      CREATE TABLE "Later Key" ("Id" int NOT NULL, v text)`);
    db = await pg.connect();
    await ensureControlSchema(db);
  });
  afterAll(async () => {
    await db?.end();
    await pg?.stop();
  });

  const rows = async (table: string) =>
    (await db.query(`SELECT * FROM ${table} ORDER BY 1, 2`)).rows.map((r) => Object.values(r).join(':'));
  const mark = (nextOffset: bigint) => ({ group: 'g', topic: 't', partition: 0, nextOffset });

  it('gives the upsert result whichever way a batch goes, offsets in the same transaction', async () => {
    const applier = new PgRowApplier(db);
    const kv: TargetTable = { schema: 'public', table: 'kv', columns: ['id', 'v', 'n'], key: ['id'] };
    await applier.applyCopyText(kv, ['1\ta\t10\n2\tb\t20\n', Buffer.from('3\t\\N\t30\n')], 3, mark(3n));
    // Key 2 is there (a re-sent chunk): COPY conflicts, the batch is upserted instead.
    await applier.applyRows(
      kv,
      [
        ['2', 'b2', '21'],
        ['4', 'd', '40'],
      ],
      mark(5n),
    );
    // From now on kv is staged; a key twice in one batch: the later one wins.
    await applier.applyRows(
      kv,
      [
        ['5', 'e', '50'],
        ['5', 'e2', '51'],
      ],
      mark(7n),
    );
    expect(await rows('kv')).toEqual(['1:a:10', '2:b2:21', '3::30', '4:d:40', '5:e2:51']);
    expect((await readOffsets(db, 'g', ['t'])).get('t:0')).toBe(7n);

    const kv2: TargetTable = { schema: 'public', table: 'kv2', columns: ['id', 'v'], key: ['id'] };
    await applier.applyRows(
      kv2,
      [
        ['1', 'x'],
        ['1', 'y'],
      ],
      null,
    );
    expect(await rows('kv2')).toEqual(['1:y']);
  });

  it('never goes direct into a deferrable key, which replica mode does not check', async () => {
    const applier = new PgRowApplier(db);
    const t: TargetTable = { schema: 'public', table: 'deferred', columns: ['id', 'v'], key: ['id'] };
    // ON CONFLICT cannot use a deferrable key: the staged way fails, as it always did, rather
    // than a COPY letting a duplicate in.
    await expect(applier.applyRows(t, [['1', 'a']], null)).rejects.toThrow(/deferrable/i);
    expect(await rows('deferred')).toEqual([]);
  });

  it('inserts into a keyless table either way', async () => {
    const applier = new PgRowApplier(db);
    const t: TargetTable = { schema: 'public', table: 'nokey', columns: ['a', 'b'], key: [] };
    await applier.applyRows(t, [['1', 'tab\there']], null);
    await applier.applyRows(t, [['1', 'tab\there']], null);
    expect(await rows('nokey')).toEqual(['1:tab\there', '1:tab\there']);
  });

  it('copies a table whose key is deferred straight in, and creates the key first when a chunk of it is sent again', async () => {
    const store = new ControlStore(db, 'later');
    await store.registerTask({ name: 'later' });
    await store.storePlan([
      { id: 'c1', sourceTable: '"public"."Later Key"', plan: {} },
      { id: 'c2', sourceTable: '"public"."Later Key"', plan: {} },
    ]);
    const deferred: DeferredKeys = {
      task: 'later',
      keys: [
        {
          target: '"public"."Later Key"',
          key: ['Id'],
          sourceTable: '"public"."Later Key"',
          sql: 'ALTER TABLE "public"."Later Key" ADD CONSTRAINT "Later Key_pkey" PRIMARY KEY ("Id")',
        },
      ],
    };
    const t: TargetTable = { schema: 'public', table: 'Later Key', columns: ['Id', 'v'], key: ['Id'] };
    const keyed = () => hasUniqueIndexOn(db, '"public"."Later Key"', ['Id']);
    // Two lanes, each with its own connection and its own view of which keys are still deferred.
    const other = await pg.connect();
    const [a, b] = [new PgRowApplier(db, deferred), new PgRowApplier(other, deferred)];
    // First attempts: straight in, no key yet.
    await store.beginChunk('c1');
    await store.beginChunk('c2');
    await a.applyRows(
      t,
      [
        ['1', 'one'],
        ['2', 'two'],
      ],
      mark(2n),
    );
    await b.applyRows(t, [['3', 'three']], null);
    expect(await keyed()).toBe(false);
    // The capture restarted in the middle of c2: it begins c2 again before sending any of it.
    await store.finishChunk('c1', 2, 0);
    await store.beginChunk('c2');
    await b.applyRows(
      t,
      [
        ['3', 'three again'],
        ['4', 'four'],
      ],
      null,
    );
    expect(await keyed()).toBe(true);
    await a.applyRows(
      t,
      [
        ['4', 'four again'],
        ['5', 'five'],
      ],
      mark(9n),
    );
    expect(await rows('"Later Key"')).toEqual(['1:one', '2:two', '3:three again', '4:four again', '5:five']);
    expect((await readOffsets(db, 'g', ['t'])).get('t:0')).toBe(9n);
    await other.end();
  });
});
