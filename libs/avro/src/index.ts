export { type BinaryWriter } from './avro-binary-fields';
export { AvroCopyDecoder } from './avro-copy-decoder';
export { converterFor } from './avro-mapping';
export { AvroSlab } from './avro-slab';
export { ChangeEncoder, type ChangeMeta, type ChangeOp } from './change-encoder';
export { decodeHeartbeatRecord, HeartbeatRecords } from './heartbeat-records';
export { type DecodedChange, RecordDecoder } from './record-decoder';
export {
  RegistryClient,
  registryUrlWithCredentials,
  stripCredentials,
  type RegistryTlsOptions,
} from './registry-client';
export { RUN_HEADER } from './run-header';
export { STREAM_POSITION_HEADER, streamPosition } from './stream-position';
export { TableEncoder } from './table-codec';
export { buildSchemas } from './table-schemas';
export { column } from './test/columns';
export { deadLetterTopic, heartbeatTopic, schemaTopic, tableTopic, transactionsTopic } from './topics';
export {
  decodeTransactionRecord,
  transactionId,
  type TransactionRecord,
  TransactionRecords,
} from './transaction-records';
export {
  requireWireSchemaId,
  wire,
  WIRE_HEADER_BYTES,
  WIRE_MAGIC,
  wireSchemaId,
  writeWireHeader,
} from './confluent-wire';
