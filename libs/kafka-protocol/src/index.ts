export type * from './api-types';
export { ProtocolError, Reader, Writer } from './buffer-io';
export { kafkaErrorCode, type KafkaErrorCode } from './error-codes';
export {
  apiName,
  decodeResponseBody,
  encodeRequestFrame,
  encodeResponseFrame,
  responseCorrelationId,
  SPLICE_BYTES,
} from './frames';
export { API_SPECS, ApiKey, ErrorCode, type ApiSpec } from './messages';
export {
  BATCH_HEADER_BYTES,
  batchRecords,
  canDecode,
  checkBatch,
  checkProducedRecords,
  codecName,
  Compression,
  InvalidBatchError,
  LOG_OVERHEAD,
  NO_PRODUCER,
  readBatchHeader,
  rebuildCodec,
  sealBatch,
  splitAndValidate,
  writeBatchHeader,
  type BatchHeader,
  type BatchHeaderFields,
  type BatchProducer,
} from './record-batch';
export {
  decodeRecords,
  forEachRecord,
  forEachRecordRange,
  forEachRecordView,
  recordHeader,
  recordHeaderAt,
  recordHeaders,
  scanBatches,
  visibleBatches,
  type AbortedTransaction,
  type BatchView,
  type KafkaRecord,
  type RecordView,
} from './record-batch-reader';
export {
  buildBatch,
  compressBatch,
  encodeHeaders,
  PartitionRecords,
  planBatch,
  writeRecordBatch,
  writeRecordBatchInto,
  type BuildBatchOptions,
  type BuildRecord,
  type RecordHeader,
} from './record-batch-writer';
export { readStruct, writeStruct } from './schema-codec';
export {
  readVarint,
  readVarlong,
  varintBytes,
  varlongBytes,
  writeVarint,
  writeVarlong,
  type Cursor,
} from './varint';
