import type { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { PIPELINE_SESSION_SQL, CopyBinarySink, describeColumns } from '@pgferry/pg';
import { columnTypeOids, copyInto } from '@pgferry/apply';
import { AvroCopyDecoder, CopyTextSink } from './avro-copy-decoder';
import { TableEncoder } from './table-codec';
import { buildSchemas } from './table-schemas';

/** Every type with a binary writer, nullable, plus the key. */
const DDL = `(
  id int PRIMARY KEY, c_bool boolean, c_int2 smallint, c_int4 integer, c_int8 bigint, c_oid oid,
  c_float4 real, c_float8 double precision, c_num numeric(18,2), c_num_wide numeric(40,10),
  c_num_free numeric, c_text text, c_varchar varchar(20), c_char char(5), c_name name, c_json json,
  c_jsonb jsonb, c_bytea bytea, c_uuid uuid, c_date date, c_ts timestamp, c_ts3 timestamp(3),
  c_tstz timestamptz, c_tags text[], c_vtags varchar(10)[], c_date_nn date NOT NULL DEFAULT '2000-01-01')`;

const COLS = [
  'id',
  'c_bool',
  'c_int2',
  'c_int4',
  'c_int8',
  'c_oid',
  'c_float4',
  'c_float8',
  'c_num',
  'c_num_wide',
  'c_num_free',
  'c_text',
  'c_varchar',
  'c_char',
  'c_name',
  'c_json',
  'c_jsonb',
  'c_bytea',
  'c_uuid',
  'c_date',
  'c_ts',
  'c_ts3',
  'c_tstz',
  'c_tags',
  'c_vtags',
  'c_date_nn',
];

/** Rows as SQL literals (NULL where absent), every edge a binary writer must get right. */
const ROWS: Array<Record<string, string>> = [
  {},
  {
    c_bool: 'true',
    c_int2: '-32768',
    c_int4: '-2147483648',
    c_int8: '-9223372036854775808',
    c_oid: '4294967295',
    c_float4: "'NaN'",
    c_float8: "'-0'",
    c_num: '-12345678901234.56',
    c_num_wide: '123456789012345678901234567890.0123456789',
    c_num_free: "'NaN'",
    c_text: "E'tab\\there\\nnewline\\r\\\\ back\"slash'' é 😀'",
    c_varchar: "''",
    c_char: "'ab'",
    c_name: "'a name'",
    c_json: `'{"a" : [1, 2.50, "x\\ty"],  "a": null}'`,
    c_jsonb: `'{"k": "v\\"q", "n": 1.50, "u": "\\u00e9"}'`,
    c_bytea: "'\\x00'",
    c_uuid: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    c_date: "'infinity'",
    c_ts: "'-infinity'",
    c_ts3: "'2024-02-29 23:59:59.999'",
    c_tstz: "'infinity'",
    c_tags: `'{NULL,"a,b","c\\\\d","\\"q\\"","",NULL,"NULL","{x}"," s "}'`,
    c_vtags: "'{}'",
    c_date_nn: "'-infinity'",
  },
  {
    c_bool: 'false',
    c_int2: '32767',
    c_int4: '2147483647',
    c_int8: '9223372036854775807',
    c_oid: '0',
    c_float4: "'-Infinity'",
    c_float8: "'Infinity'",
    c_num: '0.01',
    c_num_wide: '-0.0000000001',
    c_num_free: "'Infinity'",
    c_text: "''",
    c_varchar: "'x\\y'",
    c_char: "'abcde'",
    c_name: "''",
    c_json: "'null'",
    c_jsonb: "'[]'",
    c_bytea: "''",
    c_uuid: "'00000000-0000-0000-0000-000000000000'",
    c_date: "'-infinity'",
    c_ts: "'infinity'",
    c_ts3: "'1970-01-01 00:00:00'",
    c_tstz: "'-infinity'",
    c_tags: "'{}'",
    c_vtags: `'{NULL,"a b",x}'`,
    c_date_nn: "'infinity'",
  },
  {
    c_int2: '0',
    c_int4: '0',
    c_int8: '9007199254740993',
    c_float4: "'1e-45'",
    c_float8: "'5e-324'",
    c_num: '-0.01',
    c_num_wide: '99999999999999999999999999999.9999999999',
    c_num_free: "'-Infinity'",
    c_text: "E'\\\\N'",
    c_bytea: "'\\x00ff10005c0a'",
    c_uuid: "'FFFFFFFF-ffff-ffff-ffff-ffffffffffff'",
    c_date: "'2024-02-29'",
    c_ts: "'2024-02-29 23:59:59.999999'",
    c_tstz: "'2024-02-29 23:59:59.999999+00'",
    c_tags: "'{a}'",
    c_date_nn: "'0001-01-01'",
  },
  {
    c_int8: '-9007199254740993',
    c_float4: "'3.4028235e+38'",
    c_float8: "'1.7976931348623157e308'",
    c_num: '0',
    c_num_wide: '0',
    c_num_free: '0.000000000000000000001',
    c_date: "'4713-01-01 BC'",
    c_ts: "'4713-01-01 00:00:00 BC'",
    c_ts3: "'294276-12-31 23:59:59'",
    c_tstz: "'1500-06-01 12:00:00.000001+00'",
    c_date_nn: "'5874897-12-31'",
  },
  {
    c_int8: '-1',
    c_float4: "'-0'",
    c_float8: '0.1',
    c_num: '999999999999.99',
    c_num_free: '-123.4500',
    c_ts: "'1999-12-31 23:59:59.5'",
    c_ts3: "'2000-01-01 00:00:00.001'",
    c_tstz: "'9999-12-31 23:59:59.999999+00'",
    c_date_nn: "'1999-12-31'",
  },
  {
    c_num: '-0.10',
    c_num_free: "'100000000000000000000000000000000000000000000001.1'",
    c_ts: "'2262-04-12 00:00:00.000001'",
    c_tstz: "'0001-01-01 00:00:00+00'",
    c_date_nn: "'1970-01-01'",
  },
  {
    c_num: '1',
    c_num_free: '10000',
    c_ts: "'1677-09-21 00:12:43.145224'",
    c_tstz: "'1999-12-31 23:59:59.5+00'",
    c_tags: `'{"\\\\","é😀",NULL}'`,
  },
  {
    c_num_free: '-98765.4321012',
    c_ts: "'0001-01-01 00:00:00'",
    c_tstz: "'2000-01-01 00:00:00+00'",
  },
];

describe('COPY binary: every writer sends what COPY text sends', () => {
  let pg: PgCluster;
  let db: Client;
  let decoder: AvroCopyDecoder;
  let encoder: TableEncoder;

  /** The Avro values of the rows of `table` (TimeZone UTC, as the capture reads them). */
  async function valuesOf(table: string): Promise<Buffer[]> {
    const stream = db.query(copyTo(`COPY ${table} TO STDOUT`));
    const parts: Buffer[] = [];
    for await (const p of stream) parts.push(p as Buffer);
    const text = Buffer.concat(parts);
    const values: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < text.length; i++)
      if (text[i] === 10) {
        values.push(encoder.encodeRead(text.subarray(from, i), 1_700_000_000_000, false).value);
        from = i + 1;
      }
    return values;
  }

  async function copyBoth(values: Buffer[], textTable: string, binTable: string): Promise<number> {
    const text = new CopyTextSink(64);
    const bin = new CopyBinarySink(64);
    const writers = decoder.binaryWriters(8, binTable, await columnTypeOids(db, binTable));
    expect(writers).not.toBeNull();
    let binary = 0;
    for (const v of values) {
      expect(decoder.decodeInto(v, text)?.op).toBe('r');
      if (decoder.decodeBinaryRange(v, 0, v.length, bin, writers!)) binary++;
    }
    await copyInto(db, textTable, COLS, text.take());
    await copyInto(db, binTable, COLS, bin.take(), 'binary');
    return binary;
  }

  async function rowTexts(table: string): Promise<string[]> {
    const { rows } = await db.query(`SELECT t::text AS r FROM ${table} t ORDER BY id`);
    return rows.map((r: { r: string }) => r.r);
  }

  beforeAll(async () => {
    pg = await startPostgres();
    db = await pg.connect();
    await db.query(PIPELINE_SESSION_SQL);
    for (const t of ['src', 'via_text', 'via_binary', 'odd', 'odd_text', 'odd_binary'])
      await db.query(`CREATE TABLE ${t} ${DDL}`);
    const columns = await describeColumns(db, 'public', 'src', ['id']);
    const schemas = buildSchemas('pgferry', 'public', 'src', columns);
    decoder = new AvroCopyDecoder({ schema: async () => schemas.value });
    encoder = new TableEncoder(
      columns,
      schemas,
      { key: 7, value: 8 },
      { name: 'pgferry', db: 'db', schema: 'public', table: 'src' },
    );
    await decoder.load(8);
  });
  afterAll(async () => {
    await db?.end();
    await pg?.stop();
  });

  it('loads the same rows as COPY text, value for value, NULLs and edge values included', async () => {
    for (let i = 0; i < ROWS.length; i++) {
      const r = ROWS[i];
      const cols = ['id', ...Object.keys(r)];
      await db.query(
        `INSERT INTO src (${cols.join(', ')}) VALUES (${[String(i + 1), ...Object.values(r)].join(', ')})`,
      );
    }
    // Many rows of ordinary values, so that tuples cross the sinks' 64-byte chunks.
    await db.query(`INSERT INTO src SELECT g, g % 2 = 0, g % 32768, g * 7919, g::int8 * 1000000007, g, g / 7.0, g / 3.0,
        (g * 1.37)::numeric(14,2), g / 9.0, g / 11.0, 'name ' || g, 'v' || g, 'c' || g % 10, 'n' || g,
        json_build_object('g', g), jsonb_build_object('g', g, 'even', g % 2 = 0),
        decode(md5(g::text), 'hex'), md5(g::text)::uuid, date '2024-01-01' + g,
        timestamp '1900-01-01' + g * interval '1 day 1.000001 second', timestamp '2024-01-01' + g * interval '1.001 second',
        timestamptz '2024-01-01 00:00+00' + g * interval '1.5 second', ARRAY['t' || (g % 10), NULL, 'u' || (g % 7)],
        ARRAY['v' || g], date '2000-01-01' - g
      FROM generate_series(1000, 3000) g`);
    const values = await valuesOf('src');
    const binary = await copyBoth(values, 'via_text', 'via_binary');
    // c_ts3 '294276-12-31 23:59:59' is past the Avro long: its row goes as text only.
    expect(binary).toBe(values.length - 1);
    const src = await rowTexts('src');
    const text = await rowTexts('via_text');
    const bin = await rowTexts('via_binary');
    expect(text).toEqual(src);
    const sent = new Set(bin);
    expect(src.filter((r) => !sent.has(r))).toEqual([src[4]]);
    expect(bin).toEqual(src.filter((_r, i) => i !== 4));
    const { rows } = await db.query(
      `SELECT (SELECT count(*) FROM (SELECT t::text FROM via_binary t EXCEPT SELECT t::text FROM via_text t) x) AS extra,
              (SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM via_binary t) AS bin,
              (SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM via_text t WHERE id <> 5) AS text,
              (SELECT count(*) FROM via_binary b JOIN via_text t USING (id)
                WHERE (b.c_float8 IS DISTINCT FROM t.c_float8) OR (b.c_jsonb IS DISTINCT FROM t.c_jsonb)
                   OR (b.c_num_free IS DISTINCT FROM t.c_num_free) OR (b.c_tstz IS DISTINCT FROM t.c_tstz)
                   OR (b.c_tags IS DISTINCT FROM t.c_tags) OR (b.c_bytea IS DISTINCT FROM t.c_bytea)) AS differ`,
    );
    expect(rows[0]).toEqual({ extra: '0', bin: rows[0].text, text: rows[0].text, differ: '0' });
  });

  it('leaves to COPY text a value the binary writers cannot carry exactly, writing nothing for its row', async () => {
    const odd: Array<[string, string]> = [
      ['c_tstz', "'0044-03-15 12:00:00+00 BC'"],
      ['c_tstz', "'10000-01-01 00:00:00+00'"],
      ['c_tags', "'[0:1]={a,b}'"],
      ['c_tags', "'{{a,b},{c,d}}'"],
      ['c_ts', "'294276-12-31 23:59:59.999999'"],
    ];
    for (let i = 0; i < odd.length; i++)
      await db.query(`INSERT INTO odd (id, ${odd[i][0]}) VALUES (${i + 1}, ${odd[i][1]})`);
    await db.query(`INSERT INTO odd (id, c_text) VALUES (100, 'fine')`);
    const values = await valuesOf('odd');
    expect(await copyBoth(values, 'odd_text', 'odd_binary')).toBe(1);
    expect(await rowTexts('odd_text')).toEqual(await rowTexts('odd'));
    expect(await rowTexts('odd_binary')).toEqual((await rowTexts('odd')).slice(-1));
  });

  it('sends a table as text when a column has no binary writer or the destination type differs', async () => {
    await db.query(`CREATE TABLE other_types (id int PRIMARY KEY, a int4[], i interval);
      CREATE TABLE same_shape (id int PRIMARY KEY, a int4[], i interval)`);
    const columns = await describeColumns(db, 'public', 'other_types', ['id']);
    const schemas = buildSchemas('pgferry', 'public', 'other_types', columns);
    const d = new AvroCopyDecoder({ schema: async () => schemas.value });
    await d.load(9);
    expect(d.binaryWriters(9, 'same_shape', await columnTypeOids(db, 'same_shape'))).toBeNull();
    expect(decoder.binaryWriters(8, 'src', await columnTypeOids(db, 'src'))).not.toBeNull();
    await db.query('CREATE TABLE src_wider (LIKE src); ALTER TABLE src_wider ALTER c_int4 TYPE bigint');
    expect(decoder.binaryWriters(8, 'src_wider', await columnTypeOids(db, 'src_wider'))).toBeNull();
    expect(decoder.binaryWriters(8, 'missing', await columnTypeOids(db, 'missing'))).toBeNull();
  });
});
