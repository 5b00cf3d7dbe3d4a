import { parseAvroSchema } from './avro-schema-canonical';
import { SchemaRegistryError } from './registry-errors';

const canonical = (schema: unknown) =>
  parseAvroSchema(typeof schema === 'string' ? schema : JSON.stringify(schema)).canonical;

describe('parseAvroSchema canonical form', () => {
  it('parses a text once: the same text again gives the same result, an invalid one throws every time', () => {
    const text = '{"type":"record","name":"Once","fields":[{"name":"a","type":"long"}]}';
    const first = parseAvroSchema(text);
    expect(parseAvroSchema(text)).toBe(first);
    expect(parseAvroSchema(` ${text}`)).not.toBe(first);
    expect(parseAvroSchema(` ${text}`).canonical).toBe(first.canonical);
    for (let i = 0; i < 2; i++) expect(() => parseAvroSchema('{"type":"nope"}')).toThrow(/nope/);
  });

  it('writes a record with full names, fixed key order and no whitespace', () => {
    const text = `{
      "fields": [ { "type": "long", "name": "id", "doc": "key" } ],
      "namespace": "shop",
      "name": "Order",
      "type": "record"
    }`;
    expect(canonical(text)).toBe(
      '{"type":"record","name":"shop.Order","fields":[{"name":"id","type":"long","doc":"key"}]}',
    );
  });

  it.each([
    ['a primitive in object form', { type: 'string' }, '"string"'],
    ['a primitive name as JSON text', '"int"', '"int"'],
    ['a union', ['null', { type: 'long' }], '["null","long"]'],
    [
      'a named type referenced inside its namespace',
      {
        type: 'record',
        name: 'A',
        namespace: 'n',
        fields: [
          { name: 'b', type: { type: 'enum', name: 'B', symbols: ['X', 'Y'] } },
          { name: 'c', type: 'B' },
        ],
      },
      '{"type":"record","name":"n.A","fields":[{"name":"b","type":{"type":"enum","name":"n.B","symbols":["X","Y"]}},{"name":"c","type":"n.B"}]}',
    ],
    [
      'an array of maps',
      { type: 'array', items: { values: 'int', type: 'map' } },
      '{"type":"array","items":{"type":"map","values":"int"}}',
    ],
    [
      'a logical type and custom attributes, sorted',
      { type: 'bytes', scale: 2, precision: 10, logicalType: 'decimal' },
      '{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}',
    ],
  ])('%s', (_name, schema, expected) => {
    expect(canonical(schema)).toBe(expected);
  });

  it('gives the same text to the same schema however its names are qualified', () => {
    const a = { type: 'record', name: 'User', namespace: 'app', fields: [{ name: 'id', type: 'int' }] };
    const b = { type: 'record', name: 'app.User', fields: [{ type: 'int', name: 'id' }] };
    expect(canonical(a)).toBe(canonical(b));
  });

  it.each([
    ['a default', { default: 0 }],
    ['a doc', { doc: 'counter' }],
    ['an order', { order: 'descending' }],
  ])('keeps %s: it is part of the identity', (_name, extra) => {
    const base = { type: 'record', name: 'R', fields: [{ name: 'n', type: 'int' }] };
    const changed = { ...base, fields: [{ ...base.fields[0], ...extra }] };
    expect(canonical(changed)).not.toBe(canonical(base));
  });

  it('keeps enum symbol order, which the encoding depends on', () => {
    expect(canonical({ type: 'enum', name: 'E', symbols: ['A', 'B'] })).not.toBe(
      canonical({ type: 'enum', name: 'E', symbols: ['B', 'A'] }),
    );
  });

  it('falls back to the key-sorted text when full names cannot express the schema', () => {
    // Z lives in the null namespace and is referenced from inside namespace n: in full-name form
    // the reference "Z" would resolve to n.Z, so the original text (sorted) is the identity.
    const schema = {
      type: 'record',
      name: 'n.R',
      fields: [{ name: 'z', type: { type: 'fixed', name: 'Z', namespace: '', size: 2 } }],
    };
    const text = canonical(schema);
    expect(JSON.parse(text)).toEqual(schema);
    expect(text).toBe(
      '{"fields":[{"name":"z","type":{"name":"Z","namespace":"","size":2,"type":"fixed"}}],"name":"n.R","type":"record"}',
    );
  });
});

describe('parseAvroSchema validation', () => {
  it.each([
    ['not JSON', 'record User', /^Invalid schema: not JSON/],
    ['an unknown type name', '"Missing"', /undefined type name: Missing/],
    [
      'a default of the wrong type',
      JSON.stringify({ type: 'record', name: 'R', fields: [{ name: 'a', type: 'int', default: 'x' }] }),
      /incompatible field default/,
    ],
    ['an anonymous record', JSON.stringify({ type: 'record', fields: [] }), /missing name/],
    ['duplicate enum symbols', JSON.stringify({ type: 'enum', name: 'E', symbols: ['A', 'A'] }), /duplicate/],
    ['a number', '7', /Invalid schema/],
  ])('refuses %s with 42201', (_name, text, message) => {
    let caught: unknown;
    try {
      parseAvroSchema(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchemaRegistryError);
    expect(caught).toMatchObject({ status: 422, errorCode: 42201, retriable: false });
    expect((caught as Error).message).toMatch(message);
  });
});
