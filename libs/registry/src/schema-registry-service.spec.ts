import { SchemaRegistryError } from './registry-errors';
import { InMemorySchemaLog, type SchemaLog, type SchemaLogRecord } from './schema-log';
import { SchemaRegistryService, parseVersionSpec } from './schema-registry-service';

const user1 = JSON.stringify({ type: 'record', name: 'User', fields: [{ name: 'id', type: 'long' }] });
const user2 = JSON.stringify({
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'email', type: 'string', default: '' },
  ],
});
const user3NoDefault = JSON.stringify({
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'email', type: 'string', default: '' },
    { name: 'age', type: 'int' },
  ],
});

/** Resolves to the error a promise or function fails with, so a test can check all of its fields. */
async function failure(run: () => unknown): Promise<SchemaRegistryError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof SchemaRegistryError) return err;
    throw err;
  }
  throw new Error('expected a SchemaRegistryError');
}

/** A log whose appends wait until the test releases them, or fail when it says so. */
class GatedLog implements SchemaLog {
  readonly inner = new InMemorySchemaLog();
  readonly pending: Array<{ release: () => void; fail: (err: Error) => void }> = [];
  load(): Promise<SchemaLogRecord[]> {
    return this.inner.load();
  }
  append(key: Buffer, value: Buffer | null): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        release: () => void this.inner.append(key, value).then(resolve, reject),
        fail: reject,
      });
    });
  }
}

/** Lets queued microtasks and promise callbacks run; no timers involved. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SchemaRegistryService', () => {
  let log: InMemorySchemaLog;
  let registry: SchemaRegistryService;
  beforeEach(async () => {
    log = new InMemorySchemaLog();
    registry = await SchemaRegistryService.open(log);
  });

  describe('register', () => {
    it('is idempotent: the same schema again, in any formatting, returns its id and writes nothing', async () => {
      expect(await registry.register('users-value', user1)).toEqual({ id: 1 });
      const records = log.size;
      expect(await registry.register('users-value', user1)).toEqual({ id: 1 });
      expect(await registry.register('users-value', JSON.stringify(JSON.parse(user1), null, 2))).toEqual({
        id: 1,
      });
      expect(log.size).toBe(records);
      expect(registry.listVersions('users-value', false)).toEqual([1]);
    });

    it('reuses the global id for the same schema under another subject', async () => {
      await registry.register('a-value', user1);
      expect(await registry.register('b-value', user1)).toEqual({ id: 1 });
      expect(registry.getVersion('b-value', 'latest', false)).toEqual({
        subject: 'b-value',
        version: 1,
        id: 1,
        schema: user1,
      });
      expect(registry.getVersionsOfId(1, false)).toEqual([
        { subject: 'a-value', version: 1 },
        { subject: 'b-value', version: 1 },
      ]);
    });

    it('gives a compatible new schema the next id and version', async () => {
      await registry.register('s', user1);
      expect(await registry.register('s', user2)).toEqual({ id: 2 });
      expect(registry.getVersion('s', 2, false)).toMatchObject({ id: 2, version: 2 });
    });

    it('refuses an incompatible schema with 409 and says why, writing nothing', async () => {
      await registry.register('s', user2);
      const records = log.size;
      const err = await failure(() => registry.register('s', user3NoDefault));
      expect(err).toMatchObject({ status: 409, errorCode: 409, retriable: false });
      expect(err.message).toMatch(
        /^Schema being registered is incompatible with an earlier schema for subject "s", details: \[\{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE'.*\{oldSchemaVersion: 1\}.*\{compatibility: 'BACKWARD'\}\]$/,
      );
      expect(log.size).toBe(records);
    });

    it('refuses invalid schemas, other schema types and bad subjects with 422', async () => {
      expect(await failure(() => registry.register('s', '{"type":"record"}'))).toMatchObject({
        errorCode: 42201,
      });
      expect(await failure(() => registry.register('s', 42))).toMatchObject({ errorCode: 42201 });
      expect(await failure(() => registry.register('s', user1, 'PROTOBUF'))).toMatchObject({
        errorCode: 42201,
      });
      expect(await failure(() => registry.register('bad\nsubject', user1))).toMatchObject({
        errorCode: 42208,
      });
      expect(log.size).toBe(0);
    });

    it('gives concurrent registrations of one new schema one id and one record', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => registry.register('s', user1)));
      expect(new Set(results.map((r) => r.id))).toEqual(new Set([1]));
      expect(log.size).toBe(1);
    });

    it('orders concurrent registrations of different schemas as they were called', async () => {
      const [a, b, c] = await Promise.all([
        registry.register('a', user1),
        registry.register('b', user2),
        registry.register('c', user1),
      ]);
      expect([a.id, b.id, c.id]).toEqual([1, 2, 1]);
    });

    it('answers only after the log acknowledged the record, and reads never run ahead of it', async () => {
      const gated = new GatedLog();
      const service = await SchemaRegistryService.open(gated);
      let done = false;
      const registering = service.register('s', user1).then((r) => ((done = true), r));
      await settle();
      expect(gated.pending).toHaveLength(1);
      expect(done).toBe(false);
      expect(service.listSubjects(false)).toEqual([]);
      gated.pending[0].release();
      expect(await registering).toEqual({ id: 1 });
      expect(service.listSubjects(false)).toEqual(['s']);
    });

    it('reports a failed append as a retriable 50001 and leaves the state unchanged', async () => {
      const gated = new GatedLog();
      const service = await SchemaRegistryService.open(gated);
      const first = service.register('s', user1);
      const second = service.register('s', user1);
      await settle();
      gated.pending[0].fail(new Error('broker unavailable'));
      const err = await failure(() => first);
      expect(err).toMatchObject({ status: 500, errorCode: 50001, retriable: true });
      expect(err.message).toBe(
        'Register schema failed while writing to the _schemas log: broker unavailable',
      );
      // The queued registration runs on the unchanged state and takes the same id.
      await settle();
      gated.pending[1].release();
      expect(await second).toEqual({ id: 1 });
      expect(await gated.inner.load()).toHaveLength(1);
    });
  });

  describe('lookup', () => {
    it('finds a registered schema by canonical form, or says what is missing', async () => {
      await registry.register('s', user1);
      await registry.register('s', user2);
      const spaced = JSON.stringify(JSON.parse(user1), null, 1);
      expect(registry.lookup('s', spaced, undefined, false)).toEqual({
        subject: 's',
        version: 1,
        id: 1,
        schema: user1,
      });
      expect(await failure(() => registry.lookup('s', user3NoDefault, undefined, false))).toMatchObject({
        status: 404,
        errorCode: 40403,
        message: 'Schema not found',
      });
      expect(await failure(() => registry.lookup('t', user1, undefined, false))).toMatchObject({
        errorCode: 40401,
        message: "Subject 't' not found.",
      });
      await registry.deleteVersion('s', 1, false);
      expect(await failure(() => registry.lookup('s', user1, undefined, false))).toMatchObject({
        errorCode: 40403,
      });
      expect(registry.lookup('s', user1, undefined, true)).toMatchObject({ version: 1 });
    });
  });

  describe('deletes', () => {
    beforeEach(async () => {
      await registry.register('s', user1);
      await registry.register('s', user2);
      await registry.setLevel('s', 'FULL');
    });

    it('soft-deletes a subject, then hard-deletes it with its config', async () => {
      expect(await failure(() => registry.deleteSubject('s', true))).toMatchObject({ errorCode: 40405 });
      expect(await registry.deleteSubject('s', false)).toEqual([1, 2]);
      expect(registry.listSubjects(false)).toEqual([]);
      expect(registry.listSubjects(true)).toEqual(['s']);
      expect(await failure(() => registry.getVersion('s', 'latest', false))).toMatchObject({
        errorCode: 40401,
      });
      expect(registry.getVersion('s', 'latest', true)).toMatchObject({ version: 2 });
      expect(registry.getSchemaById(2).schema).toBe(user2);
      expect(await failure(() => registry.deleteSubject('s', false))).toMatchObject({
        errorCode: 40404,
        message: "Subject 's' was soft deleted.Set permanent=true to delete permanently",
      });
      expect(registry.getSubjectLevel('s', false)).toBe('FULL');
      expect(await registry.deleteSubject('s', true)).toEqual([1, 2]);
      expect(registry.listSubjects(true)).toEqual([]);
      expect(await failure(() => registry.getSchemaById(1))).toMatchObject({ errorCode: 40403 });
      expect(await failure(() => registry.getSubjectLevel('s', false))).toMatchObject({ errorCode: 40408 });
      expect(await failure(() => registry.deleteSubject('s', false))).toMatchObject({ errorCode: 40401 });
      // Numbering starts again; ids are not reissued while the process lives.
      expect(await registry.register('s', user1)).toEqual({ id: 3 });
      expect(registry.listVersions('s', false)).toEqual([1]);
    });

    it('soft-deletes a version, then hard-deletes it', async () => {
      expect(await registry.deleteVersion('s', 'latest', false)).toBe(2);
      expect(registry.listVersions('s', false)).toEqual([1]);
      expect(registry.listVersions('s', true)).toEqual([1, 2]);
      expect(await failure(() => registry.deleteVersion('s', 2, false))).toMatchObject({
        errorCode: 40406,
        message: "Subject 's' Version 2 was soft deleted.Set permanent=true to delete permanently",
      });
      expect(await failure(() => registry.deleteVersion('s', 1, true))).toMatchObject({
        errorCode: 40407,
        message: "Subject 's' Version 1 was not deleted first before being permanently deleted",
      });
      expect(await failure(() => registry.deleteVersion('s', 7, false))).toMatchObject({
        errorCode: 40402,
        message: 'Version 7 not found.',
      });
      expect(await registry.deleteVersion('s', 2, true)).toBe(2);
      expect(registry.listVersions('s', true)).toEqual([1]);
      expect(await failure(() => registry.getSchemaById(2))).toMatchObject({ errorCode: 40403 });
    });

    it('re-registering a soft-deleted schema makes a new version with the same id', async () => {
      await registry.deleteVersion('s', 2, false);
      expect(await registry.register('s', user2)).toEqual({ id: 2 });
      expect(registry.listVersions('s', true)).toEqual([1, 2, 3]);
    });
  });

  describe('config', () => {
    it('defaults to BACKWARD, and subjects fall back to the global level only when asked', async () => {
      expect(registry.getGlobalLevel()).toBe('BACKWARD');
      expect(await failure(() => registry.getSubjectLevel('s', false))).toMatchObject({
        status: 404,
        errorCode: 40408,
        message: "Subject 's' does not have subject-level compatibility configured",
      });
      expect(await registry.setLevel(null, 'none')).toBe('NONE');
      expect(registry.getSubjectLevel('s', true)).toBe('NONE');
      expect(await registry.setLevel('s', 'FORWARD_TRANSITIVE')).toBe('FORWARD_TRANSITIVE');
      expect(registry.getSubjectLevel('s', false)).toBe('FORWARD_TRANSITIVE');
      expect(await registry.deleteSubjectLevel('s')).toBe('FORWARD_TRANSITIVE');
      expect(await failure(() => registry.deleteSubjectLevel('s'))).toMatchObject({ errorCode: 40401 });
      expect(await failure(() => registry.setLevel(null, 'SIDEWAYS'))).toMatchObject({
        status: 422,
        errorCode: 42203,
      });
    });

    it('applies the subject level over the global one', async () => {
      await registry.register('s', user2);
      await registry.setLevel('s', 'NONE');
      expect(await registry.register('s', user3NoDefault)).toEqual({ id: 2 });
    });
  });

  describe('testCompatibility', () => {
    it('checks like a registration without a version, and against one version with it', async () => {
      await registry.register('s', JSON.stringify({ type: 'record', name: 'User', fields: [] }));
      await registry.setLevel('s', 'NONE');
      await registry.register('s', user1);
      await registry.setLevel('s', 'BACKWARD');
      expect(registry.testCompatibility('s', undefined, user2)).toEqual({ compatible: true, messages: [] });
      const verdict = registry.testCompatibility('s', 'latest', user3NoDefault);
      expect(verdict.compatible).toBe(false);
      expect(verdict.messages[0]).toMatch(/^\{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE'/);
      // Version 1 had no id field, so a schema whose id has no default cannot read it.
      expect(registry.testCompatibility('s', 1, user1).compatible).toBe(false);
      expect(registry.testCompatibility('empty', 'latest', user1).compatible).toBe(true);
      expect(await failure(() => registry.testCompatibility('empty', 1, user1))).toMatchObject({
        errorCode: 40401,
      });
      expect(await failure(() => registry.testCompatibility('s', 9, user1))).toMatchObject({
        errorCode: 40402,
      });
    });
  });

  it('rebuilds exactly the same answers from the log after a restart', async () => {
    await registry.register('a', user1);
    await registry.register('a', user2);
    await registry.register('b', user2);
    await registry.register('c', user1);
    await registry.setLevel(null, 'FULL');
    await registry.setLevel('b', 'NONE');
    await registry.deleteVersion('a', 1, false);
    await registry.deleteSubject('c', false);
    await registry.deleteSubject('c', true);
    const snapshot = (r: SchemaRegistryService) => ({
      subjects: r.listSubjects(true),
      versions: r.listSubjects(true).map((s) => r.listVersions(s, true).map((v) => r.getVersion(s, v, true))),
      ids: [1, 2].map((id) => [r.getSchemaById(id).schema, r.getVersionsOfId(id, true)]),
      global: r.getGlobalLevel(),
      levels: ['a', 'b'].map((s) => r.getSubjectLevel(s, true)),
      nextId: r.highestId(),
    });
    const restarted = await SchemaRegistryService.open(log);
    expect(snapshot(restarted)).toEqual(snapshot(registry));
    expect(snapshot(restarted).levels).toEqual(['FULL', 'NONE']);
  });
});

describe('parseVersionSpec', () => {
  it.each([
    ['latest', 'latest'],
    ['-1', 'latest'],
    ['1', 1],
    ['2147483647', 2147483647],
  ])('%s -> %j', (text, expected) => {
    expect(parseVersionSpec(text)).toBe(expected);
  });

  it.each(['0', '2147483648', 'first', '1.5', '-2', ''])('refuses %j with 42202', (text) => {
    expect(() => parseVersionSpec(text)).toThrow(
      `The specified version '${text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`,
    );
  });
});
