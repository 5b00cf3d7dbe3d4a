import {
  type CompatibilityLevel,
  compatibilityErrors,
  parseCompatibilityLevel,
} from './avro-compatibility-checker';
import { parseAvroSchema } from './avro-schema-canonical';
import { RegistryErrors } from './registry-errors';
import { RegistryState, type StoredSchema, type SubjectVersion } from './registry-state';
import type { SchemaLog } from './schema-log';
import {
  encodeConfigValue,
  encodeDeleteSubjectValue,
  encodeKey,
  encodeSchemaValue,
} from './schemas-topic-records';

/** A (subject, version) with its schema, as GET /subjects/{s}/versions/{v} returns it. */
export interface RegisteredSchema {
  subject: string;
  version: number;
  id: number;
  /** Present only for types other than AVRO, as in Confluent's responses. */
  schemaType?: string;
  schema: string;
}

export interface CompatibilityResult {
  compatible: boolean;
  /** Confluent's message list; empty when compatible. */
  messages: string[];
}

/** `latest` (also spelled -1) or a version number in [1, 2^31-1]. */
export type VersionSpec = number | 'latest';

const MAX_VERSION = 2 ** 31 - 1;

/** Parses a version path segment; SchemaRegistryError 42202 for anything else. */
export function parseVersionSpec(text: string): VersionSpec {
  if (text === 'latest' || text === '-1') return 'latest';
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_VERSION) throw RegistryErrors.invalidVersion(text);
  return n;
}

/**
 * The registry's operations over a SchemaLog, independent of HTTP. Errors are SchemaRegistryError
 * with Confluent's status and error code.
 *
 * Ordering and durability: writes run one at a time, in call order, each deciding on the state
 * left by the one before, so two concurrent registrations of one new schema get one id and one
 * version. A write resolves only after `log.append` resolved and the record was applied; if the
 * append fails the state is unchanged and the caller gets a retriable 50001. Reads see every write
 * that has resolved, and never a record the log has not acknowledged.
 */
export class SchemaRegistryService {
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly log: SchemaLog,
    private readonly state: RegistryState,
  ) {}

  /** Replays the log into a new service. Throws SchemaLogFormatError on a malformed record. */
  static async open(log: SchemaLog, onWarning?: (message: string) => void): Promise<SchemaRegistryService> {
    return new SchemaRegistryService(log, RegistryState.replay(await log.load(), onWarning));
  }

  /** Resolves when every write called so far has finished. */
  async drain(): Promise<void> {
    await this.tail;
  }

  // ---- schemas by id ----

  getSchemaById(id: number): StoredSchema {
    const stored = this.state.schemaById(id);
    if (!stored) throw RegistryErrors.schemaNotFound(id);
    return stored;
  }

  /** The highest id ever issued (Confluent's `fetchMaxId`). */
  highestId(): number {
    return this.state.highestId;
  }

  getVersionsOfId(id: number, includeDeleted: boolean): Array<{ subject: string; version: number }> {
    this.getSchemaById(id);
    return this.state
      .versionsOfId(id)
      .filter((v) => includeDeleted || !v.deleted)
      .map(({ subject, version }) => ({ subject, version }));
  }

  getSubjectsOfId(id: number, includeDeleted: boolean): string[] {
    return [...new Set(this.getVersionsOfId(id, includeDeleted).map((v) => v.subject))];
  }

  // ---- subjects and versions ----

  listSubjects(includeDeleted: boolean): string[] {
    return this.state.subjectNames(includeDeleted);
  }

  listVersions(subject: string, includeDeleted: boolean): number[] {
    return this.versionsOf(subject, includeDeleted).map((v) => v.version);
  }

  getVersion(subject: string, spec: VersionSpec, includeDeleted: boolean): RegisteredSchema {
    return this.describe(this.resolveVersion(subject, spec, includeDeleted));
  }

  /** POST /subjects/{s}: the newest version of `subject` whose schema equals `schemaText`. */
  lookup(
    subject: string,
    schemaText: unknown,
    schemaType: unknown,
    includeDeleted: boolean,
  ): RegisteredSchema {
    const { canonical } = parseRequestSchema(schemaText, schemaType);
    const versions = this.versionsOf(subject, includeDeleted);
    const match = [...versions].reverse().find((v) => this.state.schemaById(v.id)?.canonical === canonical);
    if (!match) throw RegistryErrors.schemaNotFound();
    return this.describe(match);
  }

  /**
   * Registers `schemaText` under `subject` and returns its global id. Idempotent: a schema equal
   * (in canonical form) to a live version of the subject returns that version's id and writes
   * nothing. A schema already registered under any subject keeps its id; a new one gets the next.
   */
  async register(subject: string, schemaText: unknown, schemaType?: unknown): Promise<{ id: number }> {
    validateSubject(subject);
    const parsed = parseRequestSchema(schemaText, schemaType);
    return this.serialize(async () => {
      const live = this.state.versions(subject).filter((v) => !v.deleted);
      const same = [...live]
        .reverse()
        .find((v) => this.state.schemaById(v.id)?.canonical === parsed.canonical);
      if (same) return { id: same.id };
      const errors = compatibilityErrors(
        this.state.effectiveLevel(subject),
        parsed.type,
        this.previous(live),
      );
      if (errors.length > 0) throw RegistryErrors.incompatibleSchema(subject, errors);
      const id = this.state.idForCanonical(parsed.canonical) ?? this.state.nextId();
      const schema = this.state.schemaById(id)?.schema ?? parsed.canonical;
      const version = this.state.nextVersion(subject);
      await this.write('Register schema', encodeKey({ keytype: 'SCHEMA', subject, version }), {
        value: encodeSchemaValue({ subject, version, id, schema, deleted: false }),
      });
      return { id };
    });
  }

  /**
   * DELETE /subjects/{s}. A soft delete marks every live version deleted (one DELETE_SUBJECT
   * record) and returns them; it fails with 40404 when none is live. A permanent delete needs
   * every version soft-deleted first (40405), tombstones each and the subject's config, and
   * returns them all. A failure part way leaves the versions already tombstoned gone; calling
   * again finishes the job.
   */
  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.serialize(async () => {
      const versions = this.state.versions(subject);
      if (versions.length === 0) throw RegistryErrors.subjectNotFound(subject);
      if (!permanent) {
        const live = versions.filter((v) => !v.deleted);
        if (live.length === 0) throw RegistryErrors.subjectSoftDeleted(subject);
        const watermark = live[live.length - 1].version;
        await this.write('Delete subject', encodeKey({ keytype: 'DELETE_SUBJECT', subject }), {
          value: encodeDeleteSubjectValue({ subject, version: watermark }),
        });
        return live.map((v) => v.version);
      }
      if (versions.some((v) => !v.deleted)) throw RegistryErrors.subjectNotSoftDeleted(subject);
      for (const v of versions) {
        await this.write(
          'Delete subject',
          encodeKey({ keytype: 'SCHEMA', subject, version: v.version }),
          null,
        );
      }
      await this.dropSubjectConfigIfEmpty(subject);
      return versions.map((v) => v.version);
    });
  }

  /**
   * DELETE /subjects/{s}/versions/{v}. Soft: marks one live version deleted (`latest` is the
   * newest live one), 40406 if it already is. Permanent: tombstones a soft-deleted version
   * (`latest` is the newest of all), 40407 if it is still live. Returns the version number.
   */
  deleteVersion(subject: string, spec: VersionSpec, permanent: boolean): Promise<number> {
    return this.serialize(async () => {
      const versions = this.state.versions(subject);
      if (versions.length === 0) throw RegistryErrors.subjectNotFound(subject);
      const candidates =
        spec === 'latest' && !permanent && versions.some((v) => !v.deleted)
          ? versions.filter((v) => !v.deleted)
          : versions;
      const entry =
        spec === 'latest' ? candidates[candidates.length - 1] : versions.find((v) => v.version === spec);
      if (!entry) throw RegistryErrors.versionNotFound(spec as number);
      const key = encodeKey({ keytype: 'SCHEMA', subject, version: entry.version });
      if (!permanent) {
        if (entry.deleted) throw RegistryErrors.versionSoftDeleted(subject, entry.version);
        const stored = this.getSchemaById(entry.id);
        const value = { subject, version: entry.version, id: entry.id, schema: stored.schema, deleted: true };
        await this.write('Delete schema version', key, {
          value: encodeSchemaValue({ ...value, schemaType: stored.schemaType }),
        });
        return entry.version;
      }
      if (!entry.deleted) throw RegistryErrors.versionNotSoftDeleted(subject, entry.version);
      await this.write('Delete schema version', key, null);
      await this.dropSubjectConfigIfEmpty(subject);
      return entry.version;
    });
  }

  // ---- compatibility ----

  /**
   * POST /compatibility/subjects/{s}/versions[/{v}]: whether `schemaText` could be registered.
   * Without a version it is checked as a registration would be; with one, against that version
   * only, in the direction the subject's level names. Writes nothing.
   */
  testCompatibility(
    subject: string,
    spec: VersionSpec | undefined,
    schemaText: unknown,
    schemaType?: unknown,
  ): CompatibilityResult {
    const parsed = parseRequestSchema(schemaText, schemaType);
    const live = this.state.versions(subject).filter((v) => !v.deleted);
    let against: SubjectVersion[] = live;
    if (spec !== undefined && !(spec === 'latest' && live.length === 0)) {
      against = [this.resolveVersion(subject, spec, false)];
    }
    const messages = compatibilityErrors(
      this.state.effectiveLevel(subject),
      parsed.type,
      this.previous(against),
    );
    return { compatible: messages.length === 0, messages };
  }

  // ---- config ----

  getGlobalLevel(): CompatibilityLevel {
    return this.state.globalLevel();
  }

  /** The subject's own level; the global one when `defaultToGlobal`, else 40408 if it has none. */
  getSubjectLevel(subject: string, defaultToGlobal: boolean): CompatibilityLevel {
    const own = this.state.subjectLevel(subject);
    if (own) return own;
    if (defaultToGlobal) return this.state.globalLevel();
    throw RegistryErrors.subjectCompatibilityNotConfigured(subject);
  }

  /** Sets the global (`subject` null) or a subject's level; 42203 for an unknown level. */
  async setLevel(subject: string | null, level: unknown): Promise<CompatibilityLevel> {
    const parsed = parseCompatibilityLevel(level);
    if (!parsed) throw RegistryErrors.invalidCompatibilityLevel();
    if (subject !== null) validateSubject(subject);
    return this.serialize(async () => {
      await this.write('Update compatibility level', encodeKey({ keytype: 'CONFIG', subject }), {
        value: encodeConfigValue({ compatibilityLevel: parsed }),
      });
      return parsed;
    });
  }

  /** Removes the subject's own level and returns it; 40401 when it has none, as Confluent. */
  deleteSubjectLevel(subject: string): Promise<CompatibilityLevel> {
    return this.serialize(async () => {
      const own = this.state.subjectLevel(subject);
      if (!own) throw RegistryErrors.subjectNotFound(subject);
      await this.write('Delete compatibility level', encodeKey({ keytype: 'CONFIG', subject }), null);
      return own;
    });
  }

  // ---- internals ----

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Appends one record and applies it once the log has acknowledged it. */
  private async write(operation: string, key: Buffer, record: { value: Buffer } | null): Promise<void> {
    const value = record === null ? null : record.value;
    try {
      await this.log.append(key, value);
    } catch (err) {
      throw RegistryErrors.store(operation, err);
    }
    this.state.apply(key, value);
  }

  private async dropSubjectConfigIfEmpty(subject: string): Promise<void> {
    if (this.state.versions(subject).length > 0 || !this.state.subjectLevel(subject)) return;
    await this.write('Delete subject', encodeKey({ keytype: 'CONFIG', subject }), null);
  }

  private versionsOf(subject: string, includeDeleted: boolean): SubjectVersion[] {
    const versions = this.state.versions(subject).filter((v) => includeDeleted || !v.deleted);
    if (versions.length === 0) throw RegistryErrors.subjectNotFound(subject);
    return versions;
  }

  private resolveVersion(subject: string, spec: VersionSpec, includeDeleted: boolean): SubjectVersion {
    const versions = this.versionsOf(subject, includeDeleted);
    const entry =
      spec === 'latest' ? versions[versions.length - 1] : versions.find((v) => v.version === spec);
    if (!entry) throw RegistryErrors.versionNotFound(spec as number);
    return entry;
  }

  private describe(v: SubjectVersion): RegisteredSchema {
    const { schema, schemaType } = this.getSchemaById(v.id);
    const { subject, version, id } = v;
    return schemaType === 'AVRO'
      ? { subject, version, id, schema }
      : { subject, version, id, schemaType, schema };
  }

  private previous(versions: SubjectVersion[]) {
    return versions.map((v) => {
      const stored = this.getSchemaById(v.id);
      return { version: v.version, schema: stored.schema, type: stored.type, unusable: stored.unusable };
    });
  }
}

function parseRequestSchema(schemaText: unknown, schemaType: unknown) {
  if (schemaType !== undefined && schemaType !== null && schemaType !== 'AVRO') {
    throw RegistryErrors.invalidSchema(
      `schema type ${JSON.stringify(schemaType)} is not supported; use AVRO`,
    );
  }
  if (typeof schemaText !== 'string') throw RegistryErrors.invalidSchema('"schema" must be a string');
  return parseAvroSchema(schemaText);
}

/** Confluent refuses subjects with ISO control characters (42208); empty names have no route. */
function validateSubject(subject: string): void {
  // eslint-disable-next-line no-control-regex
  if (subject.length === 0 || /[\u0000-\u001f\u007f-\u009f]/.test(subject)) {
    throw RegistryErrors.invalidSubject(subject);
  }
}
