export { runApplierProcess } from './applier-process';
export { runCaptureProcess, runStreamProcess } from './capture-process';
export { type FullMigrationResult, type MigrationEvent, runFullMigration } from './full-migration';
export { TaskStoppedError } from './incremental-phase';
export { releaseSource } from './pg-source-release';
export { type ApplierProcessConfig, CONFIG_ENV, processRole, readProcessConfig } from './process-config';
export { type ChildContext, EXIT_RETRIABLE, runChildProcess } from './supervise/child-protocol';
export { prestartFullDataChildren } from './supervised-full-data';
