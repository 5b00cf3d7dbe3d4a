import { PgferryError } from '@pgferry/core';

/**
 * The records of the `_schemas` topic, in Confluent Schema Registry's JSON formats
 * (io.confluent.kafka.schemaregistry.storage.SchemaKey, ConfigKey, DeleteSubjectKey and their
 * values), so a topic written by either registry can be read by the other.
 *
 * Key field order follows Confluent's @JsonPropertyOrder (keytype, subject, version, magic): the
 * key bytes are what compaction compares, so one logical key must always serialize the same way.
 * The `magic` values are Confluent's: 1 for SCHEMA keys, 0 for CONFIG and DELETE_SUBJECT keys.
 */
export type SchemaRecordKey =
  | { keytype: 'SCHEMA'; subject: string; version: number }
  /** `subject: null` is the global config. */
  | { keytype: 'CONFIG'; subject: string | null }
  | { keytype: 'DELETE_SUBJECT'; subject: string }
  /** NOOP, MODE, CLEAR_SUBJECT, CONTEXT and later Confluent key types: well-formed, not used here. */
  | { keytype: 'IGNORED'; name: string };

export interface SchemaValue {
  subject: string;
  version: number;
  id: number;
  schema: string;
  deleted: boolean;
  /** Absent means AVRO, as in Confluent's records. */
  schemaType?: string;
}

export interface ConfigValue {
  compatibilityLevel: string;
}

/** Soft-deletes versions 1..version of the subject (Confluent's delete watermark). */
export interface DeleteSubjectValue {
  subject: string;
  version: number;
}

/** A `_schemas` record that is not valid JSON or lacks a field its key type requires. Fatal. */
export class SchemaLogFormatError extends PgferryError {
  constructor(message: string) {
    super(message, { retriable: false, code: 'SCHEMA_LOG_FORMAT' });
  }
}

export function encodeKey(key: Exclude<SchemaRecordKey, { keytype: 'IGNORED' }>): Buffer {
  switch (key.keytype) {
    case 'SCHEMA':
      return json({ keytype: 'SCHEMA', subject: key.subject, version: key.version, magic: 1 });
    case 'CONFIG':
      return json({ keytype: 'CONFIG', subject: key.subject, magic: 0 });
    case 'DELETE_SUBJECT':
      return json({ keytype: 'DELETE_SUBJECT', subject: key.subject, magic: 0 });
  }
}

export function encodeSchemaValue(value: SchemaValue): Buffer {
  const { subject, version, id, schema, deleted, schemaType } = value;
  return json(
    schemaType === undefined || schemaType === 'AVRO'
      ? { subject, version, id, schema, deleted }
      : { subject, version, id, schemaType, schema, deleted },
  );
}

export function encodeConfigValue(value: ConfigValue): Buffer {
  return json({ compatibilityLevel: value.compatibilityLevel });
}

export function encodeDeleteSubjectValue(value: DeleteSubjectValue): Buffer {
  return json({ subject: value.subject, version: value.version });
}

export function decodeKey(buf: Buffer): SchemaRecordKey {
  const obj = parseObject(buf, 'key');
  const keytype = obj.keytype;
  switch (keytype) {
    case 'SCHEMA':
      return {
        keytype,
        subject: requireString(obj, 'subject', 'SCHEMA key'),
        version: requireInt(obj, 'version', 'SCHEMA key'),
      };
    case 'CONFIG':
      if (obj.subject === undefined || obj.subject === null) return { keytype, subject: null };
      return { keytype, subject: requireString(obj, 'subject', 'CONFIG key') };
    case 'DELETE_SUBJECT':
      return { keytype, subject: requireString(obj, 'subject', 'DELETE_SUBJECT key') };
    default:
      if (typeof keytype !== 'string') {
        throw new SchemaLogFormatError(`_schemas key has no keytype: ${show(buf)}`);
      }
      return { keytype: 'IGNORED', name: keytype };
  }
}

export function decodeSchemaValue(buf: Buffer): SchemaValue {
  const obj = parseObject(buf, 'SCHEMA value');
  const what = 'SCHEMA value';
  const value: SchemaValue = {
    subject: requireString(obj, 'subject', what),
    version: requireInt(obj, 'version', what),
    id: requireInt(obj, 'id', what),
    schema: requireString(obj, 'schema', what),
    deleted: obj.deleted === true,
  };
  if (obj.schemaType !== undefined && obj.schemaType !== null) {
    value.schemaType = requireString(obj, 'schemaType', what);
  }
  return value;
}

export function decodeConfigValue(buf: Buffer): ConfigValue {
  const obj = parseObject(buf, 'CONFIG value');
  return { compatibilityLevel: requireString(obj, 'compatibilityLevel', 'CONFIG value') };
}

export function decodeDeleteSubjectValue(buf: Buffer): DeleteSubjectValue {
  const obj = parseObject(buf, 'DELETE_SUBJECT value');
  return {
    subject: requireString(obj, 'subject', 'DELETE_SUBJECT value'),
    version: requireInt(obj, 'version', 'DELETE_SUBJECT value'),
  };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

function parseObject(buf: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new SchemaLogFormatError(
      `_schemas ${what} is not JSON (${err instanceof Error ? err.message : String(err)}): ${show(buf)}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SchemaLogFormatError(`_schemas ${what} is not a JSON object: ${show(buf)}`);
  }
  return parsed as Record<string, unknown>;
}

function requireString(obj: Record<string, unknown>, field: string, what: string): string {
  const v = obj[field];
  if (typeof v !== 'string') {
    throw new SchemaLogFormatError(`_schemas ${what} needs a string "${field}": ${JSON.stringify(obj)}`);
  }
  return v;
}

function requireInt(obj: Record<string, unknown>, field: string, what: string): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new SchemaLogFormatError(`_schemas ${what} needs an integer "${field}": ${JSON.stringify(obj)}`);
  }
  return v;
}

function show(buf: Buffer): string {
  const text = buf.toString('utf8');
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
