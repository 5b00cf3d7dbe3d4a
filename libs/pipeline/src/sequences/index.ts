export {
  readSequenceStates,
  syncSequences,
  type SequenceState,
  type SequenceSyncResult,
} from './pg-sequence-sync';
