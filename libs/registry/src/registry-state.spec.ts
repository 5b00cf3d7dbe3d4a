import { RegistryState } from './registry-state';
import type { SchemaLogRecord } from './schema-log';
import { SchemaLogFormatError } from './schemas-topic-records';

/** Records in Confluent's JSON, built by hand so replay is tested against the format, not our encoder. */
const rec = (key: object, value: object | null): SchemaLogRecord => ({
  key: Buffer.from(JSON.stringify(key)),
  value: value === null ? null : Buffer.from(JSON.stringify(value)),
});
const schemaRec = (subject: string, version: number, id: number, schema: unknown, deleted = false) =>
  rec(
    { keytype: 'SCHEMA', subject, version, magic: 1 },
    { subject, version, id, schema: typeof schema === 'string' ? schema : JSON.stringify(schema), deleted },
  );
const tombstone = (subject: string, version: number) =>
  rec({ keytype: 'SCHEMA', subject, version, magic: 1 }, null);
const configRec = (subject: string | null, level: string | null) =>
  rec({ keytype: 'CONFIG', subject, magic: 0 }, level === null ? null : { compatibilityLevel: level });
const deleteSubjectRec = (subject: string, version: number) =>
  rec({ keytype: 'DELETE_SUBJECT', subject, magic: 0 }, { subject, version });

const user1 = { type: 'record', name: 'User', fields: [{ name: 'id', type: 'long' }] };
const user2 = {
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'email', type: ['null', 'string'], default: null },
  ],
};

const summary = (state: RegistryState, subject: string) =>
  state.versions(subject).map((v) => `${v.version}:${v.id}${v.deleted ? ':deleted' : ''}`);

describe('RegistryState.replay', () => {
  it('rebuilds subjects, versions, ids and configs from the log', () => {
    const state = RegistryState.replay([
      schemaRec('users-value', 1, 1, user1),
      schemaRec('users-value', 2, 2, user2),
      schemaRec('audit-value', 1, 1, user1),
      configRec(null, 'FULL'),
      configRec('users-value', 'NONE'),
      rec({ keytype: 'NOOP', magic: 0 }, null),
      rec({ keytype: 'MODE', subject: null, magic: 0 }, { mode: 'READWRITE' }),
    ]);
    expect(state.subjectNames(false)).toEqual(['audit-value', 'users-value']);
    expect(summary(state, 'users-value')).toEqual(['1:1', '2:2']);
    expect(state.schemaById(1)?.schema).toBe(JSON.stringify(user1));
    expect(state.versionsOfId(1).map((v) => `${v.subject}/${v.version}`)).toEqual([
      'audit-value/1',
      'users-value/1',
    ]);
    expect(state.globalLevel()).toBe('FULL');
    expect(state.effectiveLevel('users-value')).toBe('NONE');
    expect(state.effectiveLevel('audit-value')).toBe('FULL');
    expect(state.nextId()).toBe(3);
    expect(state.nextVersion('users-value')).toBe(3);
    expect(state.nextVersion('new-subject')).toBe(1);
  });

  it('finds an id by canonical form whatever the stored text looks like', () => {
    const state = RegistryState.replay([
      schemaRec(
        's',
        1,
        5,
        '{ "name": "User", "type": "record", "fields": [ {"type": "long", "name": "id"} ] }',
      ),
    ]);
    expect(
      state.idForCanonical('{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}'),
    ).toBe(5);
  });

  it('soft-deletes versions up to the DELETE_SUBJECT watermark', () => {
    const state = RegistryState.replay([
      schemaRec('s', 1, 1, user1),
      schemaRec('s', 2, 2, user2),
      deleteSubjectRec('s', 1),
    ]);
    expect(summary(state, 's')).toEqual(['1:1:deleted', '2:2']);
    expect(state.subjectNames(false)).toEqual(['s']);
  });

  it('treats a deleted flag as a soft delete that keeps the id', () => {
    const state = RegistryState.replay([schemaRec('s', 1, 1, user1), schemaRec('s', 1, 1, user1, true)]);
    expect(summary(state, 's')).toEqual(['1:1:deleted']);
    expect(state.subjectNames(false)).toEqual([]);
    expect(state.subjectNames(true)).toEqual(['s']);
    expect(state.schemaById(1)).toBeDefined();
  });

  it('drops versions on tombstones, and the schema once no version uses its id', () => {
    const state = RegistryState.replay([
      schemaRec('a', 1, 1, user1),
      schemaRec('b', 1, 1, user1),
      schemaRec('b', 2, 2, user2),
      tombstone('a', 1),
      tombstone('b', 2),
    ]);
    expect(state.subjectNames(true)).toEqual(['b']);
    expect(state.schemaById(1)).toBeDefined();
    expect(state.schemaById(2)).toBeUndefined();
    expect(state.idForCanonical(JSON.stringify(user2))).toBeUndefined();
    // Ids are never reissued while the records that named them are in the log.
    expect(state.nextId()).toBe(3);
    expect(state.nextVersion('b')).toBe(2);
  });

  it('removes configs on tombstones', () => {
    const state = RegistryState.replay([
      configRec(null, 'FORWARD'),
      configRec('s', 'FULL'),
      configRec(null, null),
      configRec('s', null),
    ]);
    expect(state.globalLevel()).toBe('BACKWARD');
    expect(state.subjectLevel('s')).toBeUndefined();
  });

  it('skips, with a warning, a record giving an existing id another schema (as Confluent)', () => {
    const warnings: string[] = [];
    const state = RegistryState.replay([schemaRec('a', 1, 1, user1), schemaRec('b', 1, 1, user2)], (w) =>
      warnings.push(w),
    );
    expect(state.subjectNames(true)).toEqual(['a']);
    expect(warnings).toEqual(['skipped b version 1: id 1 already names another schema']);
  });

  it('keeps versions it cannot parse, so their numbers and ids are never reused', () => {
    const warnings: string[] = [];
    const protobuf = rec(
      { keytype: 'SCHEMA', subject: 'p', version: 1, magic: 1 },
      {
        subject: 'p',
        version: 1,
        id: 9,
        schemaType: 'PROTOBUF',
        schema: 'syntax = "proto3";',
        deleted: false,
      },
    );
    const state = RegistryState.replay([protobuf, schemaRec('bad', 1, 10, '{"type":"nope"}')], (w) =>
      warnings.push(w),
    );
    expect(state.schemaById(9)).toMatchObject({
      schemaType: 'PROTOBUF',
      unusable: 'PROTOBUF is not supported',
    });
    expect(state.schemaById(10)?.unusable).toMatch(/^cannot be parsed: Invalid schema/);
    expect(state.nextVersion('p')).toBe(2);
    expect(state.nextId()).toBe(11);
    expect(warnings).toHaveLength(2);
  });

  it('ignores an unknown compatibility level with a warning', () => {
    const warnings: string[] = [];
    const state = RegistryState.replay([configRec(null, 'SIDEWAYS')], (w) => warnings.push(w));
    expect(state.globalLevel()).toBe('BACKWARD');
    expect(warnings[0]).toMatch(/unknown compatibility level SIDEWAYS/);
  });

  it('fails on a malformed record, naming its position', () => {
    const records = [schemaRec('s', 1, 1, user1), { key: Buffer.from('not json'), value: null }];
    expect(() => RegistryState.replay(records)).toThrow(SchemaLogFormatError);
    expect(() => RegistryState.replay(records)).toThrow(
      /^record 1 of the _schemas log: _schemas key is not JSON/,
    );
  });

  it('fails when a SCHEMA value does not match its key', () => {
    const bad = rec(
      { keytype: 'SCHEMA', subject: 's', version: 1, magic: 1 },
      { subject: 't', version: 1, id: 1, schema: '"int"', deleted: false },
    );
    expect(() => RegistryState.replay([bad])).toThrow(/holds a value for t\/1/);
  });
});
