/** Two projects: unit specs (no I/O) and integration specs (real servers from libs/testing). */
const moduleNameMapper = {
  '^@pgferry/(core|pg|schema|precheck|avro|kafka-protocol|kafka|registry|kafka-broker|control|capture|apply|verify|task|testing)$':
    '<rootDir>/libs/$1/src',
};
const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
};
const common = { rootDir: __dirname, testEnvironment: 'node', transform, moduleNameMapper };

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
  ],
};
