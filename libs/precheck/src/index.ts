export { formatPrecheckReport } from './precheck-format';
export { blocking, type PrecheckReport } from './precheck-report';
export { runPrecheck } from './run-precheck';
