export {
  addStreamTable,
  ControlStore,
  ensureControlSchema,
  type OffsetMark,
  OffsetFenceError,
  type OffsetUpdate,
  type PhaseName,
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
