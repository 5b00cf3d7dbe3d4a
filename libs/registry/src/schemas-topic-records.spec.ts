import {
  SchemaLogFormatError,
  decodeConfigValue,
  decodeDeleteSubjectValue,
  decodeKey,
  decodeSchemaValue,
  encodeConfigValue,
  encodeDeleteSubjectValue,
  encodeKey,
  encodeSchemaValue,
} from './schemas-topic-records';

/** Byte-level fixtures: what Confluent Schema Registry writes to `_schemas`, character for character. */
const FIXTURES = {
  schemaKey: '{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}',
  schemaValue: '{"subject":"orders-value","version":3,"id":7,"schema":"\\"string\\"","deleted":false}',
  globalConfigKey: '{"keytype":"CONFIG","subject":null,"magic":0}',
  subjectConfigKey: '{"keytype":"CONFIG","subject":"orders-value","magic":0}',
  configValue: '{"compatibilityLevel":"FULL"}',
  deleteSubjectKey: '{"keytype":"DELETE_SUBJECT","subject":"orders-value","magic":0}',
  deleteSubjectValue: '{"subject":"orders-value","version":3}',
};

const text = (buf: Buffer) => buf.toString('utf8');

describe('_schemas record encoding', () => {
  it('encodes keys in Confluent field order, so compaction sees one key per logical key', () => {
    expect(text(encodeKey({ keytype: 'SCHEMA', subject: 'orders-value', version: 3 }))).toBe(
      FIXTURES.schemaKey,
    );
    expect(text(encodeKey({ keytype: 'CONFIG', subject: null }))).toBe(FIXTURES.globalConfigKey);
    expect(text(encodeKey({ keytype: 'CONFIG', subject: 'orders-value' }))).toBe(FIXTURES.subjectConfigKey);
    expect(text(encodeKey({ keytype: 'DELETE_SUBJECT', subject: 'orders-value' }))).toBe(
      FIXTURES.deleteSubjectKey,
    );
  });

  it('encodes values as Confluent does, omitting schemaType for AVRO', () => {
    const value = { subject: 'orders-value', version: 3, id: 7, schema: '"string"', deleted: false };
    expect(text(encodeSchemaValue(value))).toBe(FIXTURES.schemaValue);
    expect(text(encodeSchemaValue({ ...value, schemaType: 'AVRO' }))).toBe(FIXTURES.schemaValue);
    expect(text(encodeConfigValue({ compatibilityLevel: 'FULL' }))).toBe(FIXTURES.configValue);
    expect(text(encodeDeleteSubjectValue({ subject: 'orders-value', version: 3 }))).toBe(
      FIXTURES.deleteSubjectValue,
    );
  });

  it('decodes what it encodes', () => {
    const b = (s: string) => Buffer.from(s);
    expect(decodeKey(b(FIXTURES.schemaKey))).toEqual({
      keytype: 'SCHEMA',
      subject: 'orders-value',
      version: 3,
    });
    expect(decodeKey(b(FIXTURES.globalConfigKey))).toEqual({ keytype: 'CONFIG', subject: null });
    expect(decodeKey(b(FIXTURES.deleteSubjectKey))).toEqual({
      keytype: 'DELETE_SUBJECT',
      subject: 'orders-value',
    });
    expect(decodeSchemaValue(b(FIXTURES.schemaValue))).toEqual({
      subject: 'orders-value',
      version: 3,
      id: 7,
      schema: '"string"',
      deleted: false,
    });
    expect(decodeConfigValue(b(FIXTURES.configValue))).toEqual({ compatibilityLevel: 'FULL' });
    expect(decodeDeleteSubjectValue(b(FIXTURES.deleteSubjectValue))).toEqual({
      subject: 'orders-value',
      version: 3,
    });
  });

  it('reads records written by newer Confluent versions', () => {
    // Global config key without a subject, extra value fields, and key types it does not use.
    expect(decodeKey(Buffer.from('{"keytype":"CONFIG","magic":0}'))).toEqual({
      keytype: 'CONFIG',
      subject: null,
    });
    expect(
      decodeSchemaValue(
        Buffer.from(
          '{"subject":"s","version":1,"id":2,"schemaType":"PROTOBUF","schema":"x","deleted":true,"ts":1}',
        ),
      ),
    ).toEqual({ subject: 's', version: 1, id: 2, schemaType: 'PROTOBUF', schema: 'x', deleted: true });
    expect(decodeConfigValue(Buffer.from('{"compatibilityLevel":"NONE","normalize":true}'))).toEqual({
      compatibilityLevel: 'NONE',
    });
    for (const keytype of ['NOOP', 'MODE', 'CLEAR_SUBJECT', 'CONTEXT']) {
      expect(decodeKey(Buffer.from(JSON.stringify({ keytype, magic: 0 })))).toEqual({
        keytype: 'IGNORED',
        name: keytype,
      });
    }
  });

  it.each([
    ['a key that is not JSON', () => decodeKey(Buffer.from('{"keytype":')), /key is not JSON/],
    ['a key without keytype', () => decodeKey(Buffer.from('{"subject":"s"}')), /has no keytype/],
    ['a key that is an array', () => decodeKey(Buffer.from('[]')), /not a JSON object/],
    [
      'a SCHEMA key without version',
      () => decodeKey(Buffer.from('{"keytype":"SCHEMA","subject":"s"}')),
      /integer "version"/,
    ],
    [
      'a SCHEMA value without schema',
      () => decodeSchemaValue(Buffer.from('{"subject":"s","version":1,"id":1}')),
      /string "schema"/,
    ],
    ['a CONFIG value without level', () => decodeConfigValue(Buffer.from('{}')), /compatibilityLevel/],
  ])('refuses %s', (_name, decode, message) => {
    expect(decode).toThrow(SchemaLogFormatError);
    expect(decode).toThrow(message);
  });
});
