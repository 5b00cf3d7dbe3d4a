export {
  createAllTypes,
  findPgBinDir,
  freePort,
  loadPgbenchLike,
  serverUser,
  tableDigest,
} from '@pgferry/pg';
export { runPgbench } from './pgbench';
export { type PgCluster, startPostgres } from './postgres';
export { captureOutput, processAlive, readPidFile } from './process-output';
export { waitFor } from './wait-for';
