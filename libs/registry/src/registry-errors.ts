import { PgferryError } from '@pgferry/core';

/**
 * An error the registry answers with. `status` is the HTTP status and `errorCode` the Confluent
 * `error_code` (io.confluent.kafka.schemaregistry.rest.exceptions.Errors), so clients written for
 * Confluent Schema Registry can branch on them. Only store failures (50001) are retriable: every
 * other code describes the request, and sending it again gets the same answer.
 */
export class SchemaRegistryError extends PgferryError {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
    cause?: unknown,
  ) {
    super(message, { retriable: errorCode === 50001, cause, code: `SCHEMA_REGISTRY_${errorCode}` });
  }

  toJSON(): { error_code: number; message: string } {
    return { error_code: this.errorCode, message: this.message };
  }
}

/** Confluent's wording, kept byte for byte: some clients match on the message. */
export const RegistryErrors = {
  /** A protocol-level failure (no route, bad body); Confluent's Jersey layer uses the status as code. */
  http: (status: number, message: string) => new SchemaRegistryError(status, status, message),
  subjectNotFound: (subject: string) =>
    new SchemaRegistryError(404, 40401, `Subject '${subject}' not found.`),
  versionNotFound: (version: number) => new SchemaRegistryError(404, 40402, `Version ${version} not found.`),
  schemaNotFound: (id?: number) =>
    new SchemaRegistryError(404, 40403, id === undefined ? 'Schema not found' : `Schema ${id} not found`),
  subjectSoftDeleted: (subject: string) =>
    new SchemaRegistryError(
      404,
      40404,
      `Subject '${subject}' was soft deleted.Set permanent=true to delete permanently`,
    ),
  subjectNotSoftDeleted: (subject: string) =>
    new SchemaRegistryError(
      404,
      40405,
      `Subject '${subject}' was not deleted first before being permanently deleted`,
    ),
  versionSoftDeleted: (subject: string, version: number) =>
    new SchemaRegistryError(
      404,
      40406,
      `Subject '${subject}' Version ${version} was soft deleted.Set permanent=true to delete permanently`,
    ),
  versionNotSoftDeleted: (subject: string, version: number) =>
    new SchemaRegistryError(
      404,
      40407,
      `Subject '${subject}' Version ${version} was not deleted first before being permanently deleted`,
    ),
  subjectCompatibilityNotConfigured: (subject: string) =>
    new SchemaRegistryError(
      404,
      40408,
      `Subject '${subject}' does not have subject-level compatibility configured`,
    ),
  /** Confluent answers HTTP 409 with error_code 409 (RestIncompatibleSchemaException). */
  incompatibleSchema: (subject: string, details: string[]) =>
    new SchemaRegistryError(
      409,
      409,
      `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: [${details.join(', ')}]`,
    ),
  invalidSchema: (reason: string) => new SchemaRegistryError(422, 42201, `Invalid schema: ${reason}`),
  invalidVersion: (version: string) =>
    new SchemaRegistryError(
      422,
      42202,
      `The specified version '${version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`,
    ),
  invalidCompatibilityLevel: () =>
    new SchemaRegistryError(
      422,
      42203,
      'Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive',
    ),
  invalidSubject: (subject: string) =>
    new SchemaRegistryError(422, 42208, `The specified subject '${subject}' is not valid.`),
  store: (operation: string, cause: unknown) =>
    new SchemaRegistryError(
      500,
      50001,
      `${operation} failed while writing to the _schemas log: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause,
    ),
};
