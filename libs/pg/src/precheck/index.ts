/** The precheck (DESIGN phase 1): read-only checks of both servers before a task starts. */
export { runPrecheck, type PrecheckOptions } from './run-precheck';
export {
  blocking,
  makeReport,
  type BlockingVerdict,
  type PrecheckItem,
  type PrecheckLevel,
  type PrecheckReport,
} from './precheck-report';
export { formatPrecheckReport } from './precheck-format';
