import { SpecError } from '@pgferry/core';
import { PgSchemaMigrator } from './schema-migrator';

describe('PgSchemaMigrator options', () => {
  const endpoint = {
    host: '127.0.0.1',
    port: 5432,
    database: 'db',
    user: 'u',
    ssl: { mode: 'disable' as const },
  };

  it.each([0, -1, 1.5])('refuses jobs %p as a spec error naming the option', (jobs) => {
    const make = () =>
      new PgSchemaMigrator({ source: endpoint, destination: endpoint, workDir: '/nonexistent', jobs });
    expect(make).toThrow(SpecError);
    expect(make).toThrow(`task spec: schema option jobs must be a positive integer, got ${jobs}`);
  });
});
