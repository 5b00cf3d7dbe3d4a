/**
 * Three projects: unit specs (no I/O), integration specs (real servers from libs/testing, Kafka
 * paths on pgferry's embedded broker), and the suites that go through Kafka once more on real
 * Apache Kafka (PGFERRY_TEST_BROKER=kafka: libs/testing's startTestBroker gives them a KRaft
 * broker from java/kafka/pom.xml and pgferry's registry over it).
 */
const moduleNameMapper = {
  '^@pgferry/(core|pg|schema|precheck|avro|kafka-protocol|kafka|registry|kafka-broker|control|capture|apply|verify|task|testing)$':
    '<rootDir>/libs/$1/src',
};
const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
};
const common = { rootDir: __dirname, testEnvironment: 'node', transform, moduleNameMapper };

/** The end-to-end suites that go through Kafka: run on both brokers. */
const KAFKA_PATH = [
  'libs/kafka/src/kafka-producer.int-spec.ts',
  'libs/kafka/src/kafka-partition-fetcher.int-spec.ts',
  'libs/kafka/src/kafka-admin.int-spec.ts',
  'libs/kafka/src/kafka-topics.int-spec.ts',
  'libs/registry/src/kafka-registry.int-spec.ts',
  'libs/apply/src/snapshot-applier.int-spec.ts',
  'libs/apply/src/per-key-applier.int-spec.ts',
  'libs/apply/src/transactional-applier.int-spec.ts',
  'libs/apply/src/run-records.int-spec.ts',
  'libs/task/src/full-migration.int-spec.ts',
  'libs/task/src/cdc-end-to-end.int-spec.ts',
  'libs/task/src/apicurio-migration.int-spec.ts',
  'apps/controller/src/migrate.int-spec.ts',
  'apps/controller/src/incremental.int-spec.ts',
  'apps/controller/src/incremental-transactional.int-spec.ts',
  'apps/controller/src/child-processes.int-spec.ts',
  'apps/controller/src/consumers.int-spec.ts',
  'apps/controller/src/scaled-appliers.int-spec.ts',
  'apps/controller/src/runs.int-spec.ts',
  'apps/controller/src/replay.int-spec.ts',
  'apps/controller/src/broker-restart.int-spec.ts',
  'apps/controller/src/wide-rows.int-spec.ts',
  'apps/controller/src/topics.int-spec.ts',
  'apps/controller/src/transforms.int-spec.ts',
  'apps/controller/src/throttle.int-spec.ts',
  'apps/controller/src/filters.int-spec.ts',
];

module.exports = {
  // Integration tests start real clusters; each test still sets its own tighter waits.
  testTimeout: 120000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{libs,apps}/*/src/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/{libs,apps}/*/src/**/*.int-spec.ts'],
    },
    {
      ...common,
      displayName: 'integration-kafka',
      testMatch: KAFKA_PATH.map((f) => `<rootDir>/${f}`),
      setupFiles: ['<rootDir>/scripts/jest-real-kafka.js'],
    },
  ],
};
