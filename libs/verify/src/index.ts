export { verifyTables } from './pg-table-verifier';
export { assertVerified, formatVerifyReport } from './verify-report';
