export { type SchemaRegistryServer, startSchemaRegistry } from './http-registry-server';
export { type SchemaLog, type SchemaLogRecord } from './schema-log';
export {
  KafkaSchemaLog,
  startKafkaRegistry,
  type KafkaRegistryOptions,
  type KafkaSchemaLogOptions,
} from './kafka-schema-log';
