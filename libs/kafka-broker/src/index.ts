export * from './server/kafka-server';
export * from './server/broker-state';
export * from './protocol/record-batch';
export * from './protocol/crc32c';
export { ApiKey, ErrorCode, API_SPECS } from './protocol/messages';
export * from './embedded/start-embedded-kafka';
export * from './embedded/broker-schema-log';
export * from './registry';
