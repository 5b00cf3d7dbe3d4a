export { verifyTables } from './pg-table-verifier';
export { rowDifferences, type RowDifference } from './row-differences';
export {
  assertVerified,
  describeRange,
  formatVerifyReport,
  type TableVerdict,
  type VerifyReport,
} from './verify-report';
