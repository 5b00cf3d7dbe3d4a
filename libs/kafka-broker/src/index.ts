export * from './server/kafka-server';
export * from './server/broker-state';
export * from './protocol/record-batch';
export * from './protocol/crc32c';
export { ApiKey, ErrorCode, API_SPECS } from './protocol/messages';
