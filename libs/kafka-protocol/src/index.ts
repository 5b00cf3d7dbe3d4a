export { ProtocolError, Reader, Writer } from './buffer-io';
export {
  decodeFetchResponse,
  encodeFetchRequest,
  FETCH_API_KEY,
  FETCH_VERSION,
  type FetchedPartition,
  type FetchLimits,
  type FetchPartition,
} from './fetch';
export { API_SPECS, ApiKey, ErrorCode } from './messages';
export {
  type BatchSource,
  decodeProduceResponse,
  encodeProduceFrame,
  encodeProduceRequest,
  type PartitionBatch,
  type PartitionResult,
  PRODUCE_API_KEY,
  PRODUCE_MAX_VERSION,
  PRODUCE_MIN_VERSION,
} from './produce';
export {
  type BatchView,
  forEachRecord,
  forEachRecordRange,
  scanBatches,
  visibleBatches,
} from './record-batch-reader';
export {
  BATCH_HEADER_BYTES,
  type BatchProducer,
  CODEC_LZ4,
  PartitionRecords,
  planBatch,
  varintBytes,
  writeBatchHeader,
  writeRecordBatch,
  writeRecordBatchInto,
  writeVarint,
} from './record-batch-writer';
export {
  BATCH_HEADER_SIZE,
  type BatchHeader,
  buildBatch,
  canDecode,
  decodeRecords,
  InvalidBatchError,
  LOG_OVERHEAD,
  readBatchHeader,
  rebuildCodec,
  splitAndValidate,
} from './record-batch';
export { readStruct, writeStruct } from './schema-codec';
