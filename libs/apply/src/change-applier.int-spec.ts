import type { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { ensureControlSchema, readOffsets } from '@pgferry/control';
import type { TargetTable } from './pg-row-applier';
import type { DecodedChange } from '@pgferry/avro';
import { PgChangeApplier } from './pg-change-applier';

const source = { schema: 'src', table: 'x', lsn: null, snapshot: null };
const ch = (
  columns: string[],
  op: DecodedChange['op'],
  after: Array<string | null> | null,
  before: Array<string | null> | null = null,
  unchangedToast: string[] = [],
): DecodedChange => ({ op, columns, before, after, unchangedToast, source });

describe('PgChangeApplier', () => {
  let pg: PgCluster;
  let db: Client;
  let applier: PgChangeApplier;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.query(`CREATE SCHEMA "Shop Ü";
      CREATE TABLE "Shop Ü"."Orders" (id int PRIMARY KEY, "Note" text, doc text, n int NOT NULL);
      CREATE TABLE "Shop Ü".lines (order_id int REFERENCES "Shop Ü"."Orders", line int, PRIMARY KEY (order_id, line));
      CREATE TABLE "Shop Ü".log (at timestamptz, payload json, tags text[]);
      CREATE TABLE "Shop Ü".docs (id int PRIMARY KEY, body text NOT NULL, n int NOT NULL);
      ALTER TABLE "Shop Ü".docs ALTER COLUMN body SET STORAGE EXTERNAL`);
    db = await pg.connect();
    await ensureControlSchema(db);
    applier = new PgChangeApplier(db);
  });
  afterAll(async () => {
    await db?.end();
    await pg?.stop();
  });

  const orders: TargetTable = {
    schema: 'Shop Ü',
    table: 'Orders',
    columns: ['id', 'Note', 'doc', 'n'],
    key: ['id'],
  };
  const cols = ['id', 'Note', 'doc', 'n'];
  const rows = async (sql: string) => (await db.query(sql)).rows;
  const big = 'x'.repeat(5000);

  it('applies inserts, updates, key changes and deletes with the offset in the same transaction, exactly once on replay', async () => {
    const batch = [
      ch(cols, 'c', ['1', 'tab\there', big, '1']),
      ch(cols, 'c', ['2', null, 'small', '2']),
      ch(cols, 'c', ['3', 'three', 'd3', '3']),
      ch(cols, 'u', ['1', 'edited', null, '10'], null, ['doc']),
      ch(cols, 'u', ['20', 'moved', 'small', '2'], ['2', null, null, '2']),
      // The capture sends the old key's delete of a key change as a record of its own.
      ch(cols, 'd', null, ['2', null, null, '2']),
      ch(cols, 'd', null, ['3', null, null, null]),
    ];
    const mark = { group: 'g', topic: 'pre.src.x', partition: 0, nextOffset: 6n };
    // Keys 2 and 3 are born and gone inside the batch: nothing of them reaches the table.
    expect(await applier.apply(orders, batch, mark)).toEqual({
      upserted: 2,
      deleted: 0,
      truncated: 0,
      skipped: 0,
    });
    // Replaying the same batch (a crash before the consumer committed) leaves the same table.
    await applier.apply(orders, batch, mark);
    expect(await rows(`SELECT id, "Note", length(doc) AS doc, n FROM "Shop Ü"."Orders" ORDER BY id`)).toEqual(
      [
        { id: 1, Note: 'edited', doc: 5000, n: 10 },
        { id: 20, Note: 'moved', doc: 5, n: 2 },
      ],
    );
    expect(await readOffsets(db, 'g', ['pre.src.x'])).toEqual(new Map([['pre.src.x:0', 6n]]));
  });

  it('keeps a TOAST column the source did not send, in a later batch too', async () => {
    await applier.apply(orders, [ch(cols, 'u', ['1', 'again', null, '11'], null, ['doc'])], null);
    expect(
      await rows(`SELECT "Note", doc = repeat('x', 5000) AS same FROM "Shop Ü"."Orders" WHERE id = 1`),
    ).toEqual([{ Note: 'again', same: true }]);
  });

  it('moves a row to a new key keeping the TOAST column the source did not send, and refuses to invent it', async () => {
    await applier.apply(orders, [ch(cols, 'c', ['60', 'm', big, '6'])], null);
    await applier.apply(
      orders,
      [ch(cols, 'u', ['61', 'moved', null, '7'], ['60', null, null, null], ['doc'])],
      null,
    );
    expect(
      await rows(`SELECT id, "Note", length(doc) AS doc FROM "Shop Ü"."Orders" WHERE id IN (60, 61)`),
    ).toEqual([{ id: 61, Note: 'moved', doc: 5000 }]);
    await expect(
      applier.apply(orders, [ch(cols, 'u', ['63', 'x', null, '1'], ['62', null, null, null], ['doc'])], null),
    ).rejects.toThrow(
      'cannot move the row of "Shop Ü"."Orders" from key (62) to (63): the source did not send the unchanged TOAST column(s) doc and the row under the old key is not on the destination',
    );
    await db.query(`DELETE FROM "Shop Ü"."Orders" WHERE id = 61`);
  });

  it('updates a row whose NOT NULL TOAST column the source did not send, and refuses a row it cannot find', async () => {
    const docs: TargetTable = { schema: 'Shop Ü', table: 'docs', columns: ['id', 'body', 'n'], key: ['id'] };
    const dcols = ['id', 'body', 'n'];
    await applier.apply(docs, [ch(dcols, 'c', ['1', big, '1']), ch(dcols, 'c', ['2', big, '2'])], null);
    // UPDATE docs SET n = n + 1: body is not sent; an INSERT ... ON CONFLICT would fail NOT NULL.
    await applier.apply(
      docs,
      [ch(dcols, 'u', ['1', null, '2'], null, ['body']), ch(dcols, 'u', ['2', null, '3'], null, ['body'])],
      null,
    );
    expect(await rows(`SELECT id, length(body) AS body, n FROM "Shop Ü".docs ORDER BY id`)).toEqual([
      { id: 1, body: 5000, n: 2 },
      { id: 2, body: 5000, n: 3 },
    ]);
    await expect(
      applier.apply(docs, [ch(dcols, 'u', ['9', null, '1'], null, ['body'])], null),
    ).rejects.toThrow(
      'cannot update 1 row(s) of "Shop Ü"."docs" (keys (9)): the source did not send the unchanged TOAST column(s) body and the rows are not on the destination',
    );
  });

  it('rolls back the whole batch and the offset when one change fails, naming the table', async () => {
    const mark = { group: 'g', topic: 'pre.src.x', partition: 0, nextOffset: 9n };
    await expect(
      applier.apply(
        orders,
        [ch(cols, 'c', ['7', 'ok', 'd', '7']), ch(cols, 'c', ['8', 'bad', 'd', null])],
        mark,
      ),
    ).rejects.toThrow(/"Shop Ü"\."Orders"/);
    expect(await rows(`SELECT id FROM "Shop Ü"."Orders" WHERE id IN (7, 8)`)).toEqual([]);
    expect(await readOffsets(db, 'g', ['pre.src.x'])).toEqual(new Map([['pre.src.x:0', 6n]]));
  });

  it('truncates a table other tables reference (falls back to DELETE), then applies what follows', async () => {
    await db.query(`INSERT INTO "Shop Ü".lines VALUES (1, 1)`);
    const lines: TargetTable = {
      schema: 'Shop Ü',
      table: 'lines',
      columns: ['order_id', 'line'],
      key: ['order_id', 'line'],
    };
    await applier.apply(lines, [ch(['order_id', 'line'], 't', null)], null);
    expect(
      await applier.apply(orders, [ch(cols, 't', null), ch(cols, 'c', ['5', 'after', 'd', '5'])], null),
    ).toEqual({ upserted: 1, deleted: 0, truncated: 1, skipped: 0 });
    expect(await rows(`SELECT id FROM "Shop Ü"."Orders"`)).toEqual([{ id: 5 }]);
  });

  it('applies a truncate carried by every partition once, and drops older changes that arrive after it', async () => {
    const t: TargetTable = { schema: 'Shop Ü', table: 'Orders', columns: cols, key: ['id'] };
    const at = (lsn: bigint, c: DecodedChange) => ({ ...c, source: { ...c.source, lsn } });
    const p0 = (next: bigint) => ({ group: 'trunc', topic: 'pre.t', partition: 0, nextOffset: next });
    const p1 = (next: bigint) => ({ group: 'trunc', topic: 'pre.t', partition: 1, nextOffset: next });
    await applier.apply(t, [at(100n, ch(cols, 'c', ['31', 'before', 'd', '1']))], p0(1n));
    // Partition 0 reaches the truncate (LSN 200) first and goes on with a later insert.
    expect(
      await applier.apply(
        t,
        [at(200n, ch(cols, 't', null)), at(300n, ch(cols, 'c', ['32', 'after', 'd', '2']))],
        p0(3n),
      ),
    ).toEqual({ upserted: 1, deleted: 0, truncated: 1, skipped: 0 });
    // Partition 1 lags: a change from before the truncate, then its copy of it, then a later one.
    expect(
      await applier.apply(
        t,
        [
          at(150n, ch(cols, 'c', ['33', 'stale', 'd', '3'])),
          at(200n, ch(cols, 't', null)),
          at(310n, ch(cols, 'c', ['34', 'later', 'd', '4'])),
        ],
        p1(3n),
      ),
    ).toEqual({ upserted: 1, deleted: 0, truncated: 0, skipped: 2 });
    expect(await rows(`SELECT id FROM "Shop Ü"."Orders" ORDER BY id`)).toEqual([{ id: 32 }, { id: 34 }]);
  });

  it('applies a keyless table row by row, matching json and arrays by their text, and stops on a divergence', async () => {
    const log: TargetTable = { schema: 'Shop Ü', table: 'log', columns: ['at', 'payload', 'tags'], key: [] };
    const c = ['at', 'payload', 'tags'];
    const a = ['2024-01-01 00:00:00+00', '{"a": 1}', '{x,"y z"}'];
    await applier.apply(
      log,
      [ch(c, 'c', a), ch(c, 'c', a), ch(c, 'u', [a[0], '{"a": 2}', a[2]], a), ch(c, 'd', null, a)],
      null,
    );
    expect(await rows(`SELECT payload::text AS p, tags FROM "Shop Ü".log`)).toEqual([
      { p: '{"a": 2}', tags: ['x', 'y z'] },
    ]);
    await expect(applier.apply(log, [ch(c, 'd', null, a)], null)).rejects.toThrow(
      /delete of a row of "Shop Ü"\."log" \(no key\) found no matching row on the destination/,
    );
  });

  it('carries each column type through the one-statement upsert and delete, applying the column modifier and domains as an INSERT does', async () => {
    await db.query(`CREATE DOMAIN "Shop Ü".qty AS int CHECK (VALUE >= 0);
      CREATE DOMAIN "Shop Ü".code4 AS varchar(4); CREATE DOMAIN "Shop Ü"."Code" AS "Shop Ü".code4;
      CREATE TABLE "Shop Ü"."Typed ""T""" (
        k uuid, "Line №" int, doc jsonb, raw bytea, tags varchar(5)[], price numeric(6,2),
        code varchar(4), q "Shop Ü".qty, at timestamptz, kind "Shop Ü"."Code", fixed char(6), flags bit(8), PRIMARY KEY (k, "Line №"))`);
    const c = ['k', 'Line №', 'doc', 'raw', 'tags', 'price', 'code', 'q', 'at', 'kind', 'fixed', 'flags'];
    const typed: TargetTable = { schema: 'Shop Ü', table: 'Typed "T"', columns: c, key: ['k', 'Line №'] };
    const k = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    const row = (line: string, code: string, q = '1', kind = 'k1') => [
      k,
      line,
      '{"b": [1, "two"], "a": "\\"quoted\\""}',
      '\\x00ff27',
      '{"a,b","c \\"d\\"",NULL}',
      '12.345',
      code,
      q,
      '2024-02-29 23:59:59.123456+00',
      kind,
      'abc',
      '10100101',
    ];
    await applier.apply(
      typed,
      [ch(c, 'c', row('1', 'ab')), ch(c, 'c', row('2', 'NULL')), ch(c, 'd', null, row('2', ''))],
      null,
    );
    expect(
      await rows(
        `SELECT k::text, "Line №" AS line, doc->'b'->>1 AS two, doc->>'a' AS a, encode(raw, 'hex') AS raw, tags, price::text, code, q, at = '2024-02-29 23:59:59.123456+00' AS at, kind, fixed::text, flags::text FROM "Shop Ü"."Typed ""T"""`,
      ),
    ).toEqual([
      {
        k,
        line: 1,
        two: 'two',
        a: '"quoted"',
        raw: '00ff27',
        tags: ['a,b', 'c "d"', null],
        price: '12.35',
        code: 'ab',
        q: 1,
        at: true,
        kind: 'k1',
        fixed: 'abc',
        flags: '10100101',
      },
    ]);
    // Too long for varchar(4): refused as an INSERT refuses it, never cut short; the batch rolls back.
    await expect(applier.apply(typed, [ch(c, 'u', row('1', 'abcdef'))], null)).rejects.toThrow(
      /value too long for type character varying\(4\)/,
    );
    // So is a value too long for a domain over a domain over varchar(4).
    await expect(applier.apply(typed, [ch(c, 'u', row('1', 'ab', '1', 'k12345'))], null)).rejects.toThrow(
      /value too long for type character varying\(4\)/,
    );
    // A domain's check applies too.
    await expect(applier.apply(typed, [ch(c, 'c', row('3', 'ok', '-1'))], null)).rejects.toThrow(
      /qty_check|violates check constraint/,
    );
    expect(
      await rows(
        `SELECT count(*)::int AS n, max(code) AS code, max(kind) AS kind FROM "Shop Ü"."Typed ""T"""`,
      ),
    ).toEqual([{ n: 1, code: 'ab', kind: 'k1' }]);
  });

  it('looks the column types up again for the changes of a new writer schema, after a schema change', async () => {
    await db.query(`CREATE TABLE "Shop Ü".counters (id int PRIMARY KEY, n int NOT NULL)`);
    const before = ['id', 'n'];
    const counters: TargetTable = { schema: 'Shop Ü', table: 'counters', columns: before, key: ['id'] };
    await applier.apply(counters, [ch(before, 'c', ['1', '7'])], null);
    // The source widened n and the stream carried the statement; its later changes come with a
    // new writer schema (a new columns array from the decoder) and a value past int's range.
    await db.query(`ALTER TABLE "Shop Ü".counters ALTER COLUMN n TYPE bigint`);
    const after = ['id', 'n'];
    await applier.apply({ ...counters, columns: after }, [ch(after, 'u', ['1', '5000000000'])], null);
    expect(await rows(`SELECT n::text FROM "Shop Ü".counters`)).toEqual([{ n: '5000000000' }]);
  });
});
