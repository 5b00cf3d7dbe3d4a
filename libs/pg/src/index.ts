export { listTables } from './catalog';
export { classifyPgError } from './classify';
export { connect } from './connect';
export { dateToDays, daysToDate, microsToTimestamp, timestampToMicros } from './copy/civil-time';
export { CopyBinarySink } from './copy/copy-binary';
export { type CopyRows, rowsOfLines } from './copy/copy-rows';
export { CopyTextSink } from './copy/copy-text-sink';
export { copyChunks, copyLine } from './copy/copy-text';
export { describeEndpoint, type Endpoint, resolveEndpoint } from './endpoint';
export {
  type PasswordEnv,
  type PasswordSource,
  resolveEndpointPassword,
  resolveSpecPasswords,
} from './endpoint-password';
export { quoteIdent, quoteIdentList, quoteLiteral, quoteQualified } from './ident';
export { freePort } from './local/free-port';
export {
  clusterHandle,
  type ClusterHandle,
  type LocalCluster,
  type LocalClusterOptions,
  startLocalCluster,
} from './local/local-cluster';
export { findPgBinDir, type RunAs, serverUser } from './local/pg-binaries';
export { type AllTypesFixture, createAllTypes, loadPgbenchLike, tableDigest } from './local/sample-data';
export {
  type SampleWorkload,
  type SampleWorkloadOptions,
  startSampleWorkload,
  type WorkloadCounts,
} from './local/sample-workload';
export { formatLsn, type Lsn, parseLsn } from './lsn';
export { type ColumnInfo, describeColumns, describeStreamColumns } from './pg-columns';
export { EXACT_TABLE_BYTES, measureRowWidths, type RowWidth } from './pg-row-widths';
export {
  newTableRule,
  caseName,
  type NewTableRule,
  resolveSelection,
  type SelectedTable,
  type Selection,
  tableKey,
  takesNewTable,
} from './selection';
export {
  logicalSourceIssues,
  maintenanceMemoryToRaise,
  readServerInfo,
  readSourceIdentity,
  type ServerInfo,
} from './server';
export { PIPELINE_SESSION_SQL } from './session';
export {
  APPLIER_TIMEOUTS,
  endStaleSessions,
  setSessionTimeouts,
  type SessionTimeouts,
} from './session-timeouts';
export { CopyOutQuery } from './wire/pg-copy-out';
export {
  parseServerFrame,
  pgTimestampToDate,
  type ServerFrame,
  standbyStatusUpdate,
} from './wire/replication-protocol';
