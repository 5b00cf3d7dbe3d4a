export { PgChangeApplier, type ChangeApplyCounts } from './pg-change-applier';
export { TopicApplier, type TopicApplierOptions } from './topic-applier';
export { TransactionalApplier, type TransactionalApplierOptions } from './transactional-applier';
export { planKeyedChanges, type KeyAction, type PlanStep } from './change-plan';
