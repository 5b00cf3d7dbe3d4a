export { runApplierProcess } from './applier-process';
export { runCaptureProcess, runStreamProcess } from './capture-process';
export { type FullMigrationResult, runFullMigration } from './phases/full-migration';
export { type KafkaClient, kafkaClient, type KafkaConnection } from './kafka-client';
export { type MigrationEvent } from './migration-event';
export { TaskStoppedError } from './phases/incremental';
export { prestartFullDataChildren } from './phases/full-data-children';
export { releaseSource } from './pg-source-release';
export { type ApplierProcessConfig, CONFIG_ENV, processRole, readProcessConfig } from './process-config';
export { type ChildContext, EXIT_RETRIABLE, runChildProcess } from './supervise/child-protocol';
export {
  runExternalApplier,
  runExternalCapture,
  type ExternalOutcome,
  type ExternalProcessOptions,
} from './external-process';
export { CAPTURE_LEASE, leaseHolder } from './stream-lease';
export { kafkaFactsReader } from './kafka-facts';
export {
  inspectTaskTopics,
  prepareTaskTopics,
  taskTopicPrefix,
  taskTopics,
  type TaskTopic,
  type TopicsInspection,
} from './task-topics';
