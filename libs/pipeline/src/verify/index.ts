export { verifyTables, type VerifyOptions, type VerifyProgress } from './pg-table-verifier';
export {
  assertVerified,
  formatVerifyReport,
  verifyError,
  type RangeMismatch,
  type TableVerdict,
  type VerifyReport,
} from './verify-report';
export { rangeCondition, VERIFY_SESSION_SETTINGS } from './verify-plan';
