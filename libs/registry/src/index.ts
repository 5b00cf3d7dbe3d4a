export { type SchemaRegistryServer, startSchemaRegistry } from './http-registry-server';
export { type SchemaLog, type SchemaLogRecord } from './schema-log';
