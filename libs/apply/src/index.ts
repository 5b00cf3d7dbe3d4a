export {
  APPLIER_FETCH,
  applyUntilStopped,
  FailureLatch,
  splitKey,
  type Applier,
  type ApplierKafka,
  type ApplierTarget,
} from './applier';
export { ConsumerLoop, type ConsumerLoopOptions, type RoundHandler } from './consumer-loop';
export { DeadLetters, type PoisonRecord } from './dead-letter';
export { FollowingApplier } from './following-applier';
export { buildDeferredKeys, prepareKeyConstraints } from './key-constraints';
export { columnTypeOids, copyInto } from './pg-apply-session';
export { type ChangeApplyCounts } from './pg-change-applier';
export { type DeferredKeys, PgRowApplier } from './pg-row-applier';
export { PerKeyApplier, type PerKeyApplierOptions } from './per-key-applier';
export { SnapshotApplier, type ApplierOptions } from './snapshot-applier';
export { TransactionalApplier, type TransactionalApplierOptions } from './transactional-applier';
export { applyRowModule, moduleChanges } from './transform-row-module';
export { createTransformedKeys } from './transform-keys';
export { Throttle, type ThrottleLimits } from './throttle';
