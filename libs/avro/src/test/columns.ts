import type { ColumnInfo } from '@pgferry/pg';

/** A column as describeColumns gives it, for specs: nullable, not in the key, unless `extra` says. */
export function column(name: string, baseType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  return {
    name,
    type: baseType,
    baseType,
    precision: null,
    scale: null,
    notNull: false,
    keyPosition: 0,
    ...extra,
  };
}

/** A column of every type family the mapping has, NULL allowed or not, and a two-column key. */
export const ALL_TYPES: ColumnInfo[] = [
  column('id', 'int4', { notNull: true, keyPosition: 1 }),
  column('k2', 'text', { notNull: true, keyPosition: 2 }),
  column('c_int2', 'int2'),
  column('c_int8', 'int8'),
  column('c_oid', 'oid'),
  column('c_bool', 'bool'),
  column('c_float4', 'float4'),
  column('c_float8', 'float8'),
  column('c_num', 'numeric', { precision: 12, scale: 4 }),
  column('c_num_free', 'numeric'),
  column('c_date', 'date'),
  column('c_ts', 'timestamp'),
  column('c_tstz', 'timestamptz'),
  column('c_uuid', 'uuid'),
  column('c_bytea', 'bytea'),
  column('c_text', 'text'),
  column('c_arr', '_int4'),
  column('c_json', 'jsonb'),
  column('c_date_nn', 'date', { notNull: true }),
  column('c_num_nn', 'numeric', { precision: 5, scale: 0, notNull: true }),
  column('c_int8_nn', 'int8', { notNull: true }),
];

/** One row of ALL_TYPES as pgoutput sends it: each type's output text, no COPY escapes. */
export const ALL_TYPES_TEXT: Array<string | null> = [
  '1',
  'a',
  '-32768',
  '9223372036854775807',
  '4294967295',
  't',
  '3.4028235e+38',
  '2.2250738585072014e-308',
  '12345678.1234',
  '3.14159265358979323846264338327950288',
  '2024-02-29',
  '2024-02-29 23:59:59.999999',
  '2024-02-29 23:59:59.999999+00',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '\\x00ff10',
  'tab\there\nnewline \\ backslash é 😀',
  '{1,2,NULL}',
  '{"a": "b\\"c"}',
  '-infinity',
  '-99999',
  '-9223372036854775808',
];
