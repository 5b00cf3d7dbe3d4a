import type { Client } from 'pg';
import { quoteIdent, quoteQualified } from '../ident';

/**
 * Sample data, for the demo (`pgferry demo`) and the tests. `allTypesFixture` is the one DDL
 * fixture covering every built-in type family pgferry must carry exactly; a migration test
 * compares each column's text form on both sides. `loadPgbenchLike` builds a pgbench-shaped
 * dataset server-side (generate_series), fast at any size.
 */
export interface TypeCase {
  column: string;
  type: string;
  /** SQL expressions, one per data row (row 1 typical, row 2 edge values, row 3 TOAST-sized or typical). */
  values: [string, string, string];
}

const BIG = (n: number, seed: string) =>
  `(SELECT string_agg(md5('${seed}' || g::text), '') FROM generate_series(1, ${n}) g)`;

export const TYPE_CASES: TypeCase[] = [
  { column: 'c_bool', type: 'boolean', values: ['true', 'false', 'true'] },
  { column: 'c_int2', type: 'smallint', values: ['42', '-32768', '32767'] },
  { column: 'c_int4', type: 'integer', values: ['42', '-2147483648', '2147483647'] },
  { column: 'c_int8', type: 'bigint', values: ['42', '-9223372036854775808', '9223372036854775807'] },
  {
    column: 'c_numeric',
    type: 'numeric',
    values: ["'12345678901234567890.123456789012345'", "'NaN'", "'-0.000000000000000000001'"],
  },
  {
    column: 'c_numeric_scaled',
    type: 'numeric(12,4)',
    values: ["'12345678.1234'", "'-99999999.9999'", "'0.0001'"],
  },
  { column: 'c_float4', type: 'real', values: ["'3.14'", "'NaN'", "'-Infinity'"] },
  { column: 'c_float8', type: 'double precision', values: ["'2.718281828459045'", "'Infinity'", "'1e-308'"] },
  { column: 'c_money', type: 'money', values: ["'12.34'", "'-92233720368547758.08'", "'0'"] },
  {
    column: 'c_text',
    type: 'text',
    values: [
      "'hello, world'",
      "E'quote '' backslash \\\\ tab \\t newline \\n unicode \u00e9\u4e2d\ud83d\ude00'",
      BIG(4000, 't'),
    ],
  },
  { column: 'c_varchar', type: 'varchar(20)', values: ["'short'", "''", "'twenty chars exactly'"] },
  { column: 'c_char', type: 'char(5)', values: ["'ab'", "'abcde'", "' '"] },
  { column: 'c_name', type: 'name', values: ["'a_name'", '\'Mixed Case "name"\'', "'n'"] },
  { column: 'c_bytea', type: 'bytea', values: ["'\\x00ff10'", "''", `decode(${BIG(3000, 'b')}, 'hex')`] },
  { column: 'c_date', type: 'date', values: ["'2024-02-29'", "'infinity'", "'4713-01-01 BC'"] },
  { column: 'c_time', type: 'time', values: ["'13:45:59.123456'", "'24:00:00'", "'00:00:00'"] },
  {
    column: 'c_timetz',
    type: 'time with time zone',
    values: ["'13:45:59.5+05:30'", "'00:00:00-15:59'", "'23:59:59+00'"],
  },
  {
    column: 'c_timestamp',
    type: 'timestamp',
    values: ["'2024-02-29 13:45:59.123456'", "'-infinity'", "'294276-12-31 23:59:59.999999'"],
  },
  {
    column: 'c_timestamptz',
    type: 'timestamp with time zone',
    values: ["'2024-02-29 13:45:59.123456+02'", "'infinity'", "'1970-01-01 00:00:00+00'"],
  },
  {
    column: 'c_interval',
    type: 'interval',
    values: ["'1 year 2 months 3 days 04:05:06.789'", "'-178000000 years'", "'0'"],
  },
  {
    column: 'c_uuid',
    type: 'uuid',
    values: [
      "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
      "'00000000-0000-0000-0000-000000000000'",
      "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
    ],
  },
  {
    column: 'c_json',
    type: 'json',
    values: [`'{"b": 1, "a": [1, 2.50, "x"]}'`, "'null'", `json_build_object('big', ${BIG(2000, 'j')})`],
  },
  {
    column: 'c_jsonb',
    type: 'jsonb',
    values: [
      `'{"b": 1, "a": [1, 2.50, "x"]}'`,
      `'{"nested": {"deep": [true, false, null]}, "emoji": "\ud83d\ude00"}'`,
      `jsonb_build_object('big', ${BIG(2000, 'k')})`,
    ],
  },
  { column: 'c_xml', type: 'xml', values: ['\'<a b="1">text</a>\'', "'<empty/>'", "'<x/>'"] },
  { column: 'c_inet', type: 'inet', values: ["'192.168.1.5/24'", "'::ffff:1.2.3.4'", "'2001:db8::1'"] },
  { column: 'c_cidr', type: 'cidr', values: ["'10.0.0.0/8'", "'2001:db8::/32'", "'0.0.0.0/0'"] },
  {
    column: 'c_macaddr',
    type: 'macaddr',
    values: ["'08:00:2b:01:02:03'", "'ff:ff:ff:ff:ff:ff'", "'00:00:00:00:00:00'"],
  },
  {
    column: 'c_macaddr8',
    type: 'macaddr8',
    values: ["'08:00:2b:01:02:03:04:05'", "'ff:ff:ff:ff:ff:ff:ff:ff'", "'00:00:00:00:00:00:00:00'"],
  },
  { column: 'c_bit', type: 'bit(8)', values: ["B'10101010'", "B'00000000'", "B'11111111'"] },
  { column: 'c_varbit', type: 'bit varying(64)', values: ["B'101'", "B''", "B'1111000011110000'"] },
  { column: 'c_point', type: 'point', values: ["'(1.5,2.5)'", "'(-Infinity,NaN)'", "'(0,0)'"] },
  { column: 'c_line', type: 'line', values: ["'{1,2,3}'", "'{1,0,0}'", "'{0,1,-5}'"] },
  {
    column: 'c_lseg',
    type: 'lseg',
    values: ["'[(0,0),(1,1)]'", "'[(-1,-1),(1e10,1e10)]'", "'[(0,0),(0,0)]'"],
  },
  { column: 'c_box', type: 'box', values: ["'(1,1),(0,0)'", "'(0,0),(0,0)'", "'(3,4),(1,2)'"] },
  { column: 'c_path', type: 'path', values: ["'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'", "'[(0,0)]'"] },
  {
    column: 'c_polygon',
    type: 'polygon',
    values: ["'((0,0),(1,1),(2,0))'", "'((0,0))'", "'((1,1),(2,2),(3,1),(2,0))'"],
  },
  { column: 'c_circle', type: 'circle', values: ["'<(0,0),5>'", "'<(1.5,-2.5),0>'", "'<(0,0),1e-10>'"] },
  {
    column: 'c_tsvector',
    type: 'tsvector',
    values: ["to_tsvector('simple', 'the quick brown fox')", "''", "'a:1A b:2B'"],
  },
  { column: 'c_tsquery', type: 'tsquery', values: ["'fox & (dog | cat)'", "'!a'", "'a <-> b'"] },
  { column: 'c_int4range', type: 'int4range', values: ["'[1,10)'", "'empty'", "'(,)'"] },
  { column: 'c_numrange', type: 'numrange', values: ["'[1.5,2.5]'", "'(,0)'", "'empty'"] },
  {
    column: 'c_tstzrange',
    type: 'tstzrange',
    values: ["'[2024-01-01 00:00+00,2024-02-01 00:00+00)'", "'[-infinity,infinity)'", "'empty'"],
  },
  {
    column: 'c_daterange',
    type: 'daterange',
    values: ["'[2024-01-01,2024-12-31]'", "'(,2024-01-01)'", "'empty'"],
  },
  { column: 'c_int4multirange', type: 'int4multirange', values: ["'{[1,3),[5,8)}'", "'{}'", "'{(,)}'"] },
  { column: 'c_int_array', type: 'integer[]', values: ["'{1,2,3}'", "'{}'", "'{{1,NULL},{3,4}}'"] },
  {
    column: 'c_text_array',
    type: 'text[]',
    values: [`'{"a","b c","d\\"e",NULL,"NULL"}'`, "'{}'", `ARRAY[${BIG(100, 'a')}, 'x']`],
  },
  {
    column: 'c_ts_array',
    type: 'timestamptz[]',
    values: ['\'{"2024-01-01 00:00:00+00",infinity}\'', "'{}'", "'{NULL}'"],
  },
  { column: 'c_oid', type: 'oid', values: ['0', '4294967295', '1'] },
  { column: 'c_pg_lsn', type: 'pg_lsn', values: ["'16/B374D848'", "'0/0'", "'FFFFFFFF/FFFFFFFF'"] },
];

/** The user-defined type cases; their DDL is created by `allTypesFixture` in the same schema. */
export const USER_TYPE_CASES: TypeCase[] = [
  { column: 'c_enum', type: 'mood', values: ["'happy'", "'sad'", "'it''s complicated'"] },
  {
    column: 'c_enum_array',
    type: 'mood[]',
    values: ["'{happy,sad}'", "'{}'", `ARRAY['it''s complicated']::mood[]`],
  },
  { column: 'c_domain', type: 'positive_int', values: ['1', '2147483647', '7'] },
  {
    column: 'c_composite',
    type: 'address',
    values: [
      "ROW('Main St', 12, '{a,b}')::address",
      'ROW(NULL, NULL, NULL)::address',
      "ROW('quote \" and , comma', -1, '{}')::address",
    ],
  },
  { column: 'c_custom_range', type: 'floatrange', values: ["'[1.5,2.5)'", "'empty'", "'(,)'"] },
];

export interface AllTypesFixture {
  schema: string;
  table: string;
  /** Every column, in table order, `id` first. */
  columns: { name: string; type: string }[];
  /** Statements that create the types, the table and insert the rows (ids 1..4, row 4 all NULL). */
  sql: string[];
  rowCount: number;
}

/** The all-types table in `schema` (created if missing). Row 4 has NULL in every column. */
export function allTypesFixture(schema = 'public', table = 'all_types'): AllTypesFixture {
  const s = quoteIdent(schema);
  const cases = [...TYPE_CASES, ...USER_TYPE_CASES];
  const colType = (c: TypeCase) =>
    USER_TYPE_CASES.includes(c) ? c.type.replace(/^(\w+)/, `${s}.$1`) : c.type;
  const sql = [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TYPE ${s}.mood AS ENUM ('sad', 'happy', 'it''s complicated')`,
    `CREATE DOMAIN ${s}.positive_int AS integer CHECK (VALUE > 0)`,
    `CREATE TYPE ${s}.address AS (street text, number integer, tags text[])`,
    `CREATE TYPE ${s}.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi)`,
    `CREATE TABLE ${quoteQualified(schema, table)} (id integer PRIMARY KEY, ${cases
      .map((c) => `${quoteIdent(c.column)} ${colType(c)}`)
      .join(', ')})`,
  ];
  for (let row = 0; row < 3; row++) {
    sql.push(
      `INSERT INTO ${quoteQualified(schema, table)} (id, ${cases.map((c) => quoteIdent(c.column)).join(', ')}) ` +
        `SELECT ${row + 1}, ${cases.map((c) => `(${c.values[row]})::${colType(c)}`).join(', ')}`,
    );
  }
  sql.push(`INSERT INTO ${quoteQualified(schema, table)} (id) VALUES (4)`);
  return {
    schema,
    table,
    columns: [{ name: 'id', type: 'integer' }, ...cases.map((c) => ({ name: c.column, type: c.type }))],
    sql,
    rowCount: 4,
  };
}

export async function createAllTypes(
  client: Client,
  schema = 'public',
  table = 'all_types',
): Promise<AllTypesFixture> {
  const fixture = allTypesFixture(schema, table);
  // The search_path lets the enum literal casts inside ARRAY[...] resolve.
  await client.query(`SET search_path = ${quoteIdent(schema)}, public`);
  for (const stmt of fixture.sql) await client.query(stmt);
  return fixture;
}

/** md5 of the table's rows as text, ordered by the given key columns: equal on both sides means equal data. */
export async function tableDigest(
  client: Client,
  schema: string,
  table: string,
  orderBy: string[],
): Promise<{ count: number; md5: string }> {
  const t = quoteQualified(schema, table);
  const order = orderBy.map(quoteIdent).join(', ');
  const { rows } = await client.query(
    `SELECT count(*)::int AS count, coalesce(md5(string_agg(r::text, E'\\n' ORDER BY ${order.replace(/"([^"]*)"/g, 'r."$1"')})), '') AS md5 FROM ${t} r`,
  );
  return { count: rows[0].count, md5: rows[0].md5 };
}

export interface PgbenchLikeOptions {
  /** pgbench scale: 1 = 1 branch, 10 tellers, 100 000 accounts. */
  scale: number;
  schema?: string;
  /** Also create `mixed_rows` with this many rows of mixed types (text, numeric, jsonb, timestamptz, uuid, bytea). */
  mixedRows?: number;
}

/** Creates pgbench_branches/tellers/accounts/history (with primary keys) and fills them server-side. */
export async function loadPgbenchLike(client: Client, options: PgbenchLikeOptions): Promise<void> {
  const s = quoteIdent(options.schema ?? 'public');
  const n = options.scale;
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
  await client.query(`
    CREATE TABLE ${s}.pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
    CREATE TABLE ${s}.pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
    CREATE TABLE ${s}.pgbench_accounts (aid bigint PRIMARY KEY, bid int, abalance int, filler char(84));
    CREATE TABLE ${s}.pgbench_history (tid int, bid int, aid bigint, delta int, mtime timestamp, filler char(22));
    ALTER TABLE ${s}.pgbench_history REPLICA IDENTITY FULL;
    INSERT INTO ${s}.pgbench_branches SELECT g, 0, '' FROM generate_series(1, ${n}) g;
    INSERT INTO ${s}.pgbench_tellers SELECT g, (g - 1) / 10 + 1, 0, '' FROM generate_series(1, ${n * 10}) g;
    INSERT INTO ${s}.pgbench_accounts SELECT g, (g - 1) / 100000 + 1, 0, '' FROM generate_series(1, ${n * 100000}) g;`);
  if (options.mixedRows) {
    await client.query(`
      CREATE TABLE ${s}.mixed_rows (id bigint PRIMARY KEY, name text, amount numeric(14,2), doc jsonb,
        created timestamptz, ref uuid, payload bytea, tags text[], ratio double precision);
      INSERT INTO ${s}.mixed_rows
      SELECT g, 'name ' || g, (g * 1.37)::numeric(14,2), jsonb_build_object('g', g, 'even', g % 2 = 0),
             timestamptz '2024-01-01 00:00+00' + g * interval '1 second', md5(g::text)::uuid,
             decode(md5(g::text), 'hex'), ARRAY['t' || (g % 10), 'u' || (g % 7)], g / 3.0
        FROM generate_series(1, ${options.mixedRows}) g;`);
  }
  await client.query(`ANALYZE`);
}
