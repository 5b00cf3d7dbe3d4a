import { Type, types } from 'avsc';
import {
  type CompatibilityLevel,
  type PreviousVersion,
  compatibilityErrors,
  parseCompatibilityLevel,
  readIncompatibilities,
} from './avro-compatibility-checker';

const T = (schema: unknown) => Type.forSchema(schema as never);
const record = (fields: unknown[], name = 'User', extra: Record<string, unknown> = {}) => ({
  type: 'record',
  name,
  fields,
  ...extra,
});
const id = { name: 'id', type: 'long' };
const email = { name: 'email', type: 'string' };
const emailWithDefault = { name: 'email', type: 'string', default: '' };

/** [case, reader (new), writer (old), expected error types] */
const READ_CASES: Array<[string, unknown, unknown, string[]]> = [
  ['identical records', record([id]), record([id]), []],
  ['reader adds a field with a default', record([id, emailWithDefault]), record([id]), []],
  [
    'reader adds a field without a default',
    record([id, email]),
    record([id]),
    ['READER_FIELD_MISSING_DEFAULT_VALUE'],
  ],
  ['reader drops a field', record([id]), record([id, email]), []],
  [
    'reader renames a field, old name as alias',
    record([id, { name: 'mail', type: 'string', aliases: ['email'] }]),
    record([id, email]),
    [],
  ],
  ['int widened to long', 'long', 'int', []],
  ['int read as double', 'double', 'int', []],
  ['long narrowed to int', 'int', 'long', ['TYPE_MISMATCH']],
  ['string read as bytes', 'bytes', 'string', []],
  ['bytes read as string', 'string', 'bytes', []],
  ['string read as int', 'int', 'string', ['TYPE_MISMATCH']],
  [
    'field type changed inside a record',
    record([{ name: 'id', type: 'string' }]),
    record([id]),
    ['TYPE_MISMATCH'],
  ],
  ['record renamed', record([id], 'Person'), record([id], 'User'), ['NAME_MISMATCH']],
  ['record renamed with alias', record([id], 'Person', { aliases: ['User'] }), record([id], 'User'), []],
  ['namespace changed (Confluent ignores namespaces)', record([id], 'a.User'), record([id], 'b.User'), []],
  [
    'enum loses a symbol',
    { type: 'enum', name: 'E', symbols: ['A'] },
    { type: 'enum', name: 'E', symbols: ['A', 'B'] },
    ['MISSING_ENUM_SYMBOLS'],
  ],
  [
    'enum loses a symbol, reader has a default',
    { type: 'enum', name: 'E', symbols: ['A', 'U'], default: 'U' },
    { type: 'enum', name: 'E', symbols: ['A', 'B'] },
    [],
  ],
  [
    'enum gains a symbol',
    { type: 'enum', name: 'E', symbols: ['A', 'B'] },
    { type: 'enum', name: 'E', symbols: ['A'] },
    [],
  ],
  [
    'fixed size changed',
    { type: 'fixed', name: 'F', size: 4 },
    { type: 'fixed', name: 'F', size: 8 },
    ['FIXED_SIZE_MISMATCH'],
  ],
  ['value made nullable', ['null', 'string'], 'string', []],
  ['nullable made required', 'string', ['null', 'string'], ['TYPE_MISMATCH']],
  ['union loses a branch', ['null', 'string'], ['null', 'string', 'int'], ['MISSING_UNION_BRANCH']],
  ['union branch promoted', ['null', 'long'], ['null', 'int'], []],
  ['array items widened', { type: 'array', items: 'long' }, { type: 'array', items: 'int' }, []],
  ['map values narrowed', { type: 'map', values: 'int' }, { type: 'map', values: 'long' }, ['TYPE_MISMATCH']],
  [
    'recursive record gains a defaulted field',
    record([{ name: 'next', type: ['null', 'Node'], default: null }, emailWithDefault], 'Node'),
    record([{ name: 'next', type: ['null', 'Node'], default: null }], 'Node'),
    [],
  ],
  ['logical type over the same primitive', { type: 'int', logicalType: 'date' }, 'int', []],
];

describe('readIncompatibilities', () => {
  it.each(READ_CASES)('%s', (_name, reader, writer, expected) => {
    const found = readIncompatibilities(T(reader), T(writer));
    expect(found.map((f) => f.errorType)).toEqual(expected);
  });

  it.each(READ_CASES)('agrees with avsc createResolver: %s', (_name, reader, writer, expected) => {
    let resolves = true;
    try {
      T(reader).createResolver(T(writer), { ignoreNamespaces: true });
    } catch {
      resolves = false;
    }
    expect(resolves).toBe(expected.length === 0);
  });

  it('names the field, its path and the roles in the description', () => {
    const [found] = readIncompatibilities(T(record([id, email])), T(record([id])));
    expect(found).toEqual({
      errorType: 'READER_FIELD_MISSING_DEFAULT_VALUE',
      path: '/fields/1',
      description:
        "The field 'email' at path '/fields/1' in the new schema has no default value and is missing in the old schema",
      additionalInfo: 'email',
    });
  });

  it('lets avsc veto a pair the Avro rules accept', () => {
    // A logical type whose reader cannot resolve anything: the rules see its underlying long.
    class Opaque extends types.LogicalType {
      protected override _fromValue(value: unknown) {
        return value;
      }
      protected override _toValue(value: unknown) {
        return value;
      }
      protected override _resolve() {
        return undefined;
      }
    }
    const reader = Type.forSchema({ type: 'long', logicalType: 'opaque' } as never, {
      logicalTypes: { opaque: Opaque },
    });
    const found = readIncompatibilities(reader, T('long'));
    expect(found.map((f) => f.errorType)).toEqual(['AVSC_RESOLUTION_FAILED']);
    expect(found[0].description).toMatch(/^The new schema cannot read data written with the old schema: /);
  });

  it('reports the path of a nested mismatch', () => {
    const inner = (t: string) => record([{ name: 'tags', type: { type: 'array', items: t } }]);
    const [found] = readIncompatibilities(T(inner('int')), T(inner('string')));
    expect(found.path).toBe('/fields/0/type/items');
  });
});

describe('compatibilityErrors', () => {
  const v1 = record([id]);
  const v2 = record([id, emailWithDefault]);
  const v3NoDefault = record([id, emailWithDefault, { name: 'age', type: 'int' }]);
  const dropped = record([emailWithDefault]);
  const history = (...schemas: unknown[]): PreviousVersion[] =>
    schemas.map((s, i) => ({ version: i + 1, schema: JSON.stringify(s), type: T(s) }));

  const idAsString = record([{ name: 'id', type: 'string' }]);
  const withEmail = record([id, email]);
  const withAge = record([id, { name: 'age', type: 'int' }]);
  const withX = record([id, emailWithDefault, { name: 'x', type: 'int', default: 0 }]);

  /** [case, level, history (oldest first), candidate, compatible] */
  const LEVEL_CASES: Array<[string, CompatibilityLevel, unknown[], unknown, boolean]> = [
    ['NONE accepts anything', 'NONE', [v1], 'string', true],
    ['the first version is always accepted', 'BACKWARD', [], v3NoDefault, true],
    ['BACKWARD: add a defaulted field', 'BACKWARD', [v1], v2, true],
    ['BACKWARD: add a field without default', 'BACKWARD', [v2], v3NoDefault, false],
    ['BACKWARD: drop a field', 'BACKWARD', [v2], dropped, true],
    ['FORWARD: drop a field the old schema needs', 'FORWARD', [v2], dropped, false],
    ['FORWARD: add a field without default', 'FORWARD', [v1], v3NoDefault, true],
    ['FORWARD: drop a field with a default', 'FORWARD', [v2], v1, true],
    ['FULL: add a defaulted field', 'FULL', [v1], v2, true],
    ['FULL: drop a field without default', 'FULL', [v2], dropped, false],
    ['FULL: add a field without default', 'FULL', [v1], v3NoDefault, false],
    ['BACKWARD checks only the latest', 'BACKWARD', [idAsString, v1], v2, true],
    ['BACKWARD_TRANSITIVE checks every version', 'BACKWARD_TRANSITIVE', [idAsString, v1], v2, false],
    ['FORWARD checks only the latest', 'FORWARD', [withEmail, v1], v1, true],
    ['FORWARD_TRANSITIVE checks every version', 'FORWARD_TRANSITIVE', [withEmail, v1], v1, false],
    ['FULL_TRANSITIVE: defaulted fields only', 'FULL_TRANSITIVE', [v1, v2], withX, true],
    ['FULL_TRANSITIVE: an old version needs a field', 'FULL_TRANSITIVE', [withAge, v2], v2, false],
  ];

  it.each(LEVEL_CASES)('%s', (_name, level, previous, candidate, compatible) => {
    expect(compatibilityErrors(level, T(candidate), history(...previous)).length === 0).toBe(compatible);
  });

  it('lists the reasons, then the failing version, its schema and the level, as Confluent', () => {
    const messages = compatibilityErrors('BACKWARD', T(v3NoDefault), history(v1, v2));
    expect(messages).toEqual([
      "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'age' at path '/fields/2' in the new schema has no default value and is missing in the old schema', additionalInfo:'age'}",
      '{oldSchemaVersion: 2}',
      `{oldSchema: '${JSON.stringify(v2)}'}`,
      "{compatibility: 'BACKWARD'}",
    ]);
  });

  it('uses old/new roles the other way round for FORWARD', () => {
    const [first] = compatibilityErrors('FORWARD', T(dropped), history(v2));
    expect(first).toContain("The field 'id' at path '/fields/0' in the old schema has no default value");
  });

  it('refuses to vouch for a version whose schema cannot be parsed', () => {
    const previous: PreviousVersion[] = [{ version: 1, schema: 'syntax = "proto3";', unusable: 'PROTOBUF' }];
    expect(compatibilityErrors('BACKWARD', T(v1), previous)[0]).toContain('OLD_SCHEMA_UNUSABLE');
    expect(compatibilityErrors('NONE', T(v1), previous)).toEqual([]);
  });
});

describe('parseCompatibilityLevel', () => {
  it.each([
    ['backward', 'BACKWARD'],
    ['Full_Transitive', 'FULL_TRANSITIVE'],
    ['NONE', 'NONE'],
    ['SIDEWAYS', undefined],
    [3, undefined],
  ])('%j -> %j', (input, expected) => {
    expect(parseCompatibilityLevel(input)).toBe(expected);
  });
});
