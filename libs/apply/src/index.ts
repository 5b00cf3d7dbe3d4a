export { FollowingApplier } from './following-applier';
export { buildDeferredKeys, prepareKeyConstraints } from './key-constraints';
export { columnTypeOids, copyInto } from './pg-apply-session';
export { type DeferredKeys, PgRowApplier } from './pg-row-applier';
export { type ApplierTarget, SnapshotApplier } from './snapshot-applier';
export { TopicApplier } from './topic-applier';
export { TransactionalApplier } from './transactional-applier';
