import type { Type } from 'avsc';
import { parseAvroSchema } from './avro-schema-canonical';
import {
  type CompatibilityLevel,
  DEFAULT_COMPATIBILITY,
  parseCompatibilityLevel,
} from './avro-compatibility-checker';
import type { SchemaLogRecord } from './schema-log';
import {
  type SchemaRecordKey,
  SchemaLogFormatError,
  decodeConfigValue,
  decodeDeleteSubjectValue,
  decodeKey,
  decodeSchemaValue,
} from './schemas-topic-records';

/** A schema by global id, shared by every (subject, version) that registered it. */
export interface StoredSchema {
  id: number;
  /** The text as stored in the log; served as is. */
  schema: string;
  /** Identity used to find an existing id; see ParsedAvroSchema.canonical. */
  canonical: string;
  /** AVRO unless a Confluent-written log holds another type. */
  schemaType: string;
  /** Undefined when the stored text cannot be used for compatibility checks (`unusable` says why). */
  type?: Type;
  unusable?: string;
}

export interface SubjectVersion {
  subject: string;
  version: number;
  id: number;
  deleted: boolean;
}

/**
 * The registry's state as the fold of the `_schemas` log. `apply` is the only mutator, so state
 * built by replaying a log equals the state of the registry that wrote it. Records are applied as
 * Confluent's KafkaStoreMessageHandler does: SCHEMA puts or tombstones a version (a deleted flag
 * is a soft delete), DELETE_SUBJECT soft-deletes versions up to its watermark, CONFIG puts or
 * removes a compatibility level; other key types are ignored. A SCHEMA record that would give an
 * existing id a different schema is skipped with a warning, as Confluent skips it.
 *
 * Ids only grow while the process lives: `maxId` counts every id ever applied, tombstoned or not.
 * After a restart, an id whose every record was tombstoned and compacted away can be issued again,
 * as in Confluent.
 */
export class RegistryState {
  private readonly byId = new Map<number, StoredSchema>();
  private readonly idByCanonical = new Map<string, number>();
  /** subject -> version -> entry. */
  private readonly subjects = new Map<string, Map<number, SubjectVersion>>();
  private readonly configs = new Map<string, CompatibilityLevel>();
  private global: CompatibilityLevel | undefined;
  private maxId = 0;

  constructor(private readonly onWarning: (message: string) => void = () => undefined) {}

  /** Rebuilds state from records in log order. Throws SchemaLogFormatError for a malformed record. */
  static replay(records: SchemaLogRecord[], onWarning?: (message: string) => void): RegistryState {
    const state = new RegistryState(onWarning);
    records.forEach((record, index) => {
      try {
        state.apply(record.key, record.value);
      } catch (err) {
        if (err instanceof SchemaLogFormatError) {
          throw new SchemaLogFormatError(`record ${index} of the _schemas log: ${err.message}`);
        }
        throw err;
      }
    });
    return state;
  }

  apply(keyBytes: Buffer, value: Buffer | null): void {
    const key = decodeKey(keyBytes);
    switch (key.keytype) {
      case 'SCHEMA':
        if (value === null) this.removeVersion(key.subject, key.version);
        else this.putVersion(key, value);
        return;
      case 'CONFIG':
        return this.putConfig(key.subject, value);
      case 'DELETE_SUBJECT':
        if (value !== null) this.softDeleteUpTo(decodeDeleteSubjectValue(value));
        return;
      case 'IGNORED':
        return;
    }
  }

  // ---- queries ----

  /** Subjects with a live version, or with any version when `includeDeleted`; sorted. */
  subjectNames(includeDeleted: boolean): string[] {
    return [...this.subjects.entries()]
      .filter(([, versions]) => includeDeleted || [...versions.values()].some((v) => !v.deleted))
      .map(([name]) => name)
      .sort();
  }

  /** The subject's versions, soft-deleted ones included, in version order. */
  versions(subject: string): SubjectVersion[] {
    return [...(this.subjects.get(subject)?.values() ?? [])].sort((a, b) => a.version - b.version);
  }

  schemaById(id: number): StoredSchema | undefined {
    return this.byId.get(id);
  }

  idForCanonical(canonical: string): number | undefined {
    return this.idByCanonical.get(canonical);
  }

  /** Every (subject, version) registered with this id, soft-deleted ones included. */
  versionsOfId(id: number): SubjectVersion[] {
    const out: SubjectVersion[] = [];
    for (const versions of this.subjects.values()) {
      for (const v of versions.values()) if (v.id === id) out.push(v);
    }
    return out.sort((a, b) =>
      a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.version - b.version,
    );
  }

  /** The subject's own level, if it has one. */
  subjectLevel(subject: string): CompatibilityLevel | undefined {
    return this.configs.get(subject);
  }

  globalLevel(): CompatibilityLevel {
    return this.global ?? DEFAULT_COMPATIBILITY;
  }

  effectiveLevel(subject: string): CompatibilityLevel {
    return this.configs.get(subject) ?? this.globalLevel();
  }

  /** The version number a new registration under `subject` gets: one past any still held. */
  nextVersion(subject: string): number {
    return this.versions(subject).reduce((max, v) => Math.max(max, v.version), 0) + 1;
  }

  nextId(): number {
    return this.maxId + 1;
  }

  get highestId(): number {
    return this.maxId;
  }

  // ---- mutations, only through apply ----

  private putVersion(key: Extract<SchemaRecordKey, { keytype: 'SCHEMA' }>, bytes: Buffer): void {
    const value = decodeSchemaValue(bytes);
    if (value.subject !== key.subject || value.version !== key.version) {
      throw new SchemaLogFormatError(
        `SCHEMA key ${key.subject}/${key.version} holds a value for ${value.subject}/${value.version}`,
      );
    }
    const existing = this.byId.get(value.id);
    if (existing && existing.schema !== value.schema) {
      const stored = toStored(value.id, value.schema, value.schemaType);
      if (stored.canonical !== existing.canonical) {
        this.onWarning(
          `skipped ${value.subject} version ${value.version}: id ${value.id} already names another schema`,
        );
        return;
      }
    }
    this.maxId = Math.max(this.maxId, value.id);
    if (!existing) {
      const stored = toStored(value.id, value.schema, value.schemaType);
      if (stored.unusable) this.onWarning(`schema id ${value.id}: ${stored.unusable}`);
      this.byId.set(value.id, stored);
      if (!this.idByCanonical.has(stored.canonical)) this.idByCanonical.set(stored.canonical, value.id);
    }
    let versions = this.subjects.get(value.subject);
    if (!versions) this.subjects.set(value.subject, (versions = new Map()));
    const previous = versions.get(value.version);
    versions.set(value.version, {
      subject: value.subject,
      version: value.version,
      id: value.id,
      deleted: value.deleted,
    });
    if (previous && previous.id !== value.id) this.dropIdIfUnused(previous.id);
  }

  /** Removes a version; its schema goes too when no other version uses the id. */
  private removeVersion(subject: string, version: number): void {
    const versions = this.subjects.get(subject);
    const entry = versions?.get(version);
    if (!versions || !entry) return;
    versions.delete(version);
    if (versions.size === 0) this.subjects.delete(subject);
    this.dropIdIfUnused(entry.id);
  }

  private dropIdIfUnused(id: number): void {
    if (this.versionsOfId(id).length > 0) return;
    const stored = this.byId.get(id);
    this.byId.delete(id);
    if (stored && this.idByCanonical.get(stored.canonical) === id)
      this.idByCanonical.delete(stored.canonical);
  }

  private softDeleteUpTo(value: { subject: string; version: number }): void {
    for (const v of this.subjects.get(value.subject)?.values() ?? []) {
      if (v.version <= value.version) v.deleted = true;
    }
  }

  private putConfig(subject: string | null, bytes: Buffer | null): void {
    if (bytes === null) {
      if (subject === null) this.global = undefined;
      else this.configs.delete(subject);
      return;
    }
    const raw = decodeConfigValue(bytes).compatibilityLevel;
    const level = parseCompatibilityLevel(raw);
    if (!level) {
      this.onWarning(`skipped config for ${subject ?? 'the registry'}: unknown compatibility level ${raw}`);
      return;
    }
    if (subject === null) this.global = level;
    else this.configs.set(subject, level);
  }
}

function toStored(id: number, schema: string, schemaType = 'AVRO'): StoredSchema {
  if (schemaType !== 'AVRO') {
    return {
      id,
      schema,
      canonical: `${schemaType}:${schema}`,
      schemaType,
      unusable: `${schemaType} is not supported`,
    };
  }
  try {
    const parsed = parseAvroSchema(schema);
    return { id, schema, canonical: parsed.canonical, schemaType, type: parsed.type };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { id, schema, canonical: schema, schemaType, unusable: `cannot be parsed: ${reason}` };
  }
}
