export { type SchemaLog, type SchemaLogRecord, InMemorySchemaLog } from './schema-log';
export {
  type SchemaRegistryServer,
  type SchemaRegistryServerOptions,
  SCHEMA_REGISTRY_CONTENT_TYPE,
  startSchemaRegistry,
} from './http-registry-server';
export {
  type CompatibilityResult,
  type RegisteredSchema,
  type VersionSpec,
  SchemaRegistryService,
  parseVersionSpec,
} from './schema-registry-service';
export { SchemaRegistryError, RegistryErrors } from './registry-errors';
export {
  type CompatibilityLevel,
  type Incompatibility,
  type IncompatibilityType,
  type PreviousVersion,
  COMPATIBILITY_LEVELS,
  DEFAULT_COMPATIBILITY,
  compatibilityErrors,
  parseCompatibilityLevel,
  readIncompatibilities,
} from './avro-compatibility-checker';
export { type ParsedAvroSchema, parseAvroSchema } from './avro-schema-canonical';
export { SchemaLogFormatError } from './schemas-topic-records';
