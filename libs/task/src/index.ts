export { runApplierProcess } from './applier-process';
export { runCaptureProcess, runStreamProcess } from './capture-process';
export { type FullMigrationResult, runFullMigration } from './phases/full-migration';
export {
  type KafkaClient,
  kafkaClient,
  type KafkaConnection,
  specKafkaConnection,
  specRegistryUrl,
  registryTls,
} from './kafka-client';
export { registryUrlWithCredentials } from '@pgferry/avro';
export { type MigrationEvent } from './migration-event';
export { TaskStoppedError } from './phases/incremental';
export { prestartFullDataChildren } from './phases/full-data-children';
export { releaseSource } from './pg-source-release';
export { describeSlotWal } from './phases/slot-wal-watch';
export { type ApplierProcessConfig, CONFIG_ENV, processRole, readProcessConfig } from './process-config';
export { type ChildContext, EXIT_RETRIABLE, runChildProcess } from './supervise/child-protocol';
export {
  runExternalApplier,
  runExternalCapture,
  type ExternalOutcome,
  type ExternalProcessOptions,
} from './external-process';
export { CAPTURE_LEASE, leaseHolder } from './stream-lease';
export { readReplayManifest, type ReplayManifest } from './replay-manifest';
export { type ReplayPoint } from './replay/replay-bounds';
export { replayTaskName, runReplay, type ReplayOptions, type ReplayResult } from './replay/replay';
export {
  formatReplayVerify,
  verifyAgainstReplay,
  type ReplayVerifyOptions,
  type ReplayVerifyResult,
} from './replay/replay-verify';
export { kafkaFactsReader } from './kafka-facts';
export {
  inspectTaskTopics,
  prepareTaskTopics,
  taskTopicPrefix,
  taskTopics,
  type TaskTopic,
  type TopicsInspection,
} from './task-topics';
