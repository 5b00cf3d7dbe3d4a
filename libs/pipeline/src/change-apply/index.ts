export { PgChangeApplier, type ChangeApplyCounts } from './pg-change-applier';
export { planKeyedChanges, type KeyAction, type PlanStep } from './change-plan';
