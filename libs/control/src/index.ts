export {
  addStreamTable,
  ControlStore,
  ensureControlSchema,
  type OffsetMark,
  OffsetFenceError,
  type OffsetUpdate,
  type PhaseName,
  type PhaseStatus,
  readOffsets,
  readStreamPositions,
  readStreamTables,
  storeOffset,
  storeOffsets,
} from './control-store';
export {
  AppliedRate,
  applierGroup,
  cutoverRequested,
  readStreamLag,
  requestCutover,
  type StreamLag,
  type StreamMark,
  writeCaptureReport,
} from './stream-status';
export { taskRegistered } from './task-lookup';
export { dropLease, takeLease, withLease, type LeaseHolder, type LeaseOptions } from './leases';
export { readStreamSettings, writeStreamSettings, type RecordedStreamSettings } from './stream-settings';
