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
export { startUntilFailure, waitFor, type FailingSubject } from './wait-for';
export { startStallingProxy, type StallingProxy } from './tcp-proxy';
export { registerKafkajsLz4 } from './kafkajs-lz4';
export {
  kafkaFromEnv,
  startKafka,
  usingKafka,
  type KafkaBroker,
  type KafkaExit,
  type StartKafkaOptions,
} from './kafka';
export { kafkaRuntime, type KafkaRuntime } from './kafka-runtime';
export { pythonVenv } from './python-venv';
export {
  brokerForTasks,
  startTestBroker,
  taskKafka,
  testBrokerKind,
  type TestBroker,
  type TestBrokerKind,
} from './test-broker';
export {
  APICURIO_CCOMPAT_PATH,
  startApicurio,
  type ApicurioRegistry,
  type StartApicurioOptions,
} from './apicurio';
export { apicurioRuntime, type ApicurioRuntime } from './apicurio-runtime';
export { makeTestCertificates, type TestCertificates } from './tls-certificates';
