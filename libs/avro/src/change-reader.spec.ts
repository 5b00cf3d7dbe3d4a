import avro from 'avsc';
import { DataError } from '@pgferry/core';
import type { ColumnInfo } from '@pgferry/pg';
import { avscOptions, avroTypeFor, converterFor } from './avro-mapping';
import { ChangeEncoder, type ChangeMeta } from './change-encoder';
import { changeReader as readerFor, type DecodedChange } from './change-reader';
import { WIRE_HEADER_BYTES } from './confluent-wire';
import { buildSchemas } from './table-schemas';
import { ALL_TYPES, ALL_TYPES_TEXT, column } from './test/columns';

const SOURCE = { name: 'pre', db: 'shop', schema: 'Sales', table: 'Order Lines' };

/** The reference: avsc's record, then the mapping's converters, as RecordDecoder's general path. */
function viaAvsc(columns: ColumnInfo[], schema: Record<string, unknown>, body: Buffer): DecodedChange {
  const env = avro.Type.forSchema(schema as avro.Schema, avscOptions()).fromBuffer(body) as {
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
    op: DecodedChange['op'];
    source: { schema: string; table: string; lsn: bigint | null; snapshot: string | null };
    pgferry_unchanged_toast: string[];
  };
  const fields = (schema.fields as Array<{ type: unknown[] }>)[0].type[1] as {
    fields: Array<{ name: string; type: unknown }>;
  };
  const texts = (rec: Record<string, unknown> | null) =>
    rec &&
    fields.fields.map((f, i) =>
      rec[f.name] === null ? null : converterFor(avroTypeFor(columns[i])).fromAvro(rec[f.name]),
    );
  return {
    op: env.op,
    columns: columns.map((c) => c.name),
    before: texts(env.before),
    after: texts(env.after),
    unchangedToast: env.pgferry_unchanged_toast,
    source: {
      schema: env.source.schema,
      table: env.source.table,
      lsn: env.source.lsn,
      snapshot: env.source.snapshot,
    },
  };
}

const ROW = ALL_TYPES_TEXT;
const SPARSE: Array<string | null> = ROW.map((v, i) => (ALL_TYPES[i].notNull ? v : null));
const ODD: Array<string | null> = [
  '42',
  '',
  '0',
  '-1',
  '0',
  'f',
  'NaN',
  '-0',
  'NaN',
  'Infinity',
  'infinity',
  'infinity',
  '-infinity',
  '00000000-0000-0000-0000-000000000000',
  '\\x',
  '',
  '{}',
  'null',
  '5874897-12-31',
  '0',
  '1073741824',
];

const PRIMITIVES = ['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string'];

/** The schema as a registry may serve it: full names, no namespace attribute, keys in reverse order. */
function respell(node: unknown, ns: string): unknown {
  if (typeof node === 'string')
    return PRIMITIVES.includes(node) || node.includes('.') ? node : `${ns}.${node}`;
  if (Array.isArray(node)) return node.map((n) => respell(n, ns));
  if (typeof node !== 'object' || node === null) return node;
  const obj = { ...(node as Record<string, unknown>) };
  let inner = ns;
  if (obj.type === 'record') {
    const space = typeof obj.namespace === 'string' ? obj.namespace : ns;
    const name = String(obj.name);
    obj.name = name.includes('.') || !space ? name : `${space}.${name}`;
    inner = (obj.name as string).slice(0, (obj.name as string).lastIndexOf('.'));
    delete obj.namespace;
    obj.fields = (obj.fields as Array<Record<string, unknown>>).map((f) =>
      Object.fromEntries(Object.entries({ ...f, type: respell(f.type, inner) }).reverse()),
    );
  } else if (typeof obj.type !== 'string' || ![...PRIMITIVES, 'array', 'map'].includes(obj.type))
    obj.type = respell(obj.type, inner);
  if (obj.items !== undefined) obj.items = respell(obj.items, inner);
  return Object.fromEntries(Object.entries(obj).reverse());
}

const changeReader = (schema: Record<string, unknown>) =>
  readerFor(schema, avro.Type.forSchema(schema as avro.Schema, avscOptions()));

describe('changeReader reads what avsc reads from a pgferry envelope', () => {
  const schemas = buildSchemas(SOURCE.name, SOURCE.schema, SOURCE.table, ALL_TYPES);
  const enc = new ChangeEncoder(ALL_TYPES, schemas, { key: 1, value: 2 }, SOURCE);
  const read = changeReader(schemas.value)!;
  const metas: ChangeMeta[] = [
    { lsn: 0x16b3748n, txId: 771, tsMs: 1_733_000_000_123 },
    { lsn: 5n, txId: null, tsMs: 0, transaction: { id: '9:5', totalOrder: 1, dataCollectionOrder: 1 } },
  ];

  it('for every type, op, image and unchanged TOAST list', () => {
    expect(read).not.toBeNull();
    const cases: Array<Parameters<ChangeEncoder['encode']>> = [];
    for (const meta of metas)
      for (const row of [ROW, SPARSE, ODD]) {
        cases.push(['c', null, row, [], meta]);
        cases.push(['u', ROW, row, ['c_text', 'c json'], meta]);
        cases.push(['d', row, null, [], meta]);
      }
    for (const args of cases) {
      const body = enc.encode(...args).value.subarray(WIRE_HEADER_BYTES);
      expect(read(body)).toEqual(viaAvsc(ALL_TYPES, schemas.value, body));
    }
    const t = enc.encodeTruncate(metas[1]).value.subarray(WIRE_HEADER_BYTES);
    expect(read(t)).toEqual(viaAvsc(ALL_TYPES, schemas.value, t));
    expect(read(t).op).toBe('t');
  });

  it('refuses truncated, padded and corrupt bodies with a DataError', () => {
    const body = enc.encode('c', null, ROW, [], metas[0]).value.subarray(WIRE_HEADER_BYTES);
    expect(() => read(body.subarray(0, body.length - 3))).toThrow(DataError);
    expect(() => read(Buffer.concat([body, Buffer.from([0, 0])]))).toThrow('2 bytes follow the value');
    const bad = Buffer.from(body);
    bad[0] = 4;
    expect(() => read(bad)).toThrow('Avro union branch byte 4 is not in the schema (0 or 2)');
  });

  it('reads the envelope however its schema is spelled (full names, no namespace attributes, other key order)', () => {
    const respelled = respell(schemas.value, '') as Record<string, unknown>;
    expect(JSON.stringify(respelled)).not.toBe(JSON.stringify(schemas.value));
    const again = changeReader(respelled);
    expect(again).not.toBeNull();
    const body = enc.encode('u', ROW, ODD, ['c_text'], metas[1]).value.subarray(WIRE_HEADER_BYTES);
    expect(again!(body)).toEqual(read(body));
  });

  it('declines envelopes that are not the one pgferry writes (those go through avsc)', () => {
    const other = buildSchemas('p', 's', 't', [
      column('id', 'int4', { notNull: true, keyPosition: 1 }),
    ]).value;
    const fields = other.fields as Array<Record<string, unknown>>;
    expect(changeReader(other)).not.toBeNull();
    expect(
      changeReader({ ...other, fields: [...fields, { name: 'extra', type: 'int', default: 0 }] }),
    ).toBeNull();
    expect(
      changeReader({
        ...other,
        fields: fields.map((f) => (f.name === 'op' ? { ...f, type: ['null', 'string'] } : f)),
      }),
    ).toBeNull();
    const source = fields[2].type as { fields: unknown[] };
    expect(
      changeReader({
        ...other,
        fields: fields.map((f) =>
          f.name === 'source' ? { ...f, type: { ...source, fields: source.fields.slice(1) } } : f,
        ),
      }),
    ).toBeNull();
  });
});
