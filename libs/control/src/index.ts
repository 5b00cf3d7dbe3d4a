export {
  chunkSentAgain,
  claimDdl,
  ddlAppliedByHandSql,
  lockTruncateLsn,
  storeTruncateLsn,
} from './apply-state';
export { ensureControlSchema } from './control-schema';
export { ControlStore, type PhaseName, type PhaseStatus } from './control-store';
export {
  type OffsetMark,
  OffsetFenceError,
  type OffsetUpdate,
  readGroupOffsets,
  readOffsets,
  readStreamPositions,
  storeOffset,
  storeOffsets,
} from './offsets';
export {
  checkRun,
  newRunId,
  readRun,
  readStartOffsets,
  recordStartOffsets,
  RunMismatchError,
  runMismatch,
  startRun,
  type RunIdentity,
  type SeenIdentity,
} from './runs';
export { addStreamTable, readStreamTables } from './stream-tables';
export {
  AppliedRate,
  applierGroup,
  cutoverRequested,
  markCoverage,
  readStreamLag,
  requestCutover,
  type SlotWal,
  type StreamLag,
  type StreamMark,
  writeCaptureReport,
} from './stream-status';
export { listTaskNames, readTaskRow, taskRegistered } from './task-lookup';
export { dropLease, takeLease, withLease, type LeaseHolder, type LeaseOptions } from './leases';
export { readStreamSettings, writeStreamSettings, type RecordedStreamSettings } from './stream-settings';
export {
  readThrottle,
  readThrottleStatus,
  recordSpecThrottle,
  reportThrottle,
  storeThrottle,
  type ThrottleRecord,
  type ThrottleReport,
  type ThrottleStatus,
} from './throttle';
