export * from './wait-for';
export * from './free-port';
export * from './pg-binaries';
export * from './postgres';
export * from './generators';
export * from './pgbench';
export * from './process-output';
export * from './kafka';
export { kafkaRuntime, type KafkaRuntime } from './kafka-runtime';
