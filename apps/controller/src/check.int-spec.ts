import { startPostgres, type PgCluster } from '@pgferry/testing';
import { runBasicChecks } from './check';

describe('pgferry check', () => {
  let source: PgCluster;
  let destination: PgCluster;
  beforeAll(async () => {
    [source, destination] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres({ logical: false }),
    ]);
    await source.query(`CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Keyless Orders" (id int, note text);
      CREATE TABLE "Sales".keyed (id int PRIMARY KEY); CREATE TABLE "Sales".full_ident (v text);
      ALTER TABLE "Sales".full_ident REPLICA IDENTITY FULL;
      CREATE TABLE "Sales".uniq (code text NOT NULL UNIQUE)`);
  });
  afterAll(async () => {
    await source?.stop();
    await destination?.stop();
  });

  it('passes good servers and raises an alert naming the keyless table and the fix', async () => {
    const items = await runBasicChecks({
      source: { url: source.url() },
      destination: { url: destination.url() },
      incremental: true,
    });
    expect(items.filter((i) => i.level !== 'passed')).toEqual([
      {
        item: 'primary key',
        level: 'alert',
        message:
          '"Sales"."Keyless Orders" has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows; add a primary key, or run ALTER TABLE "Sales"."Keyless Orders" REPLICA IDENTITY FULL',
      },
    ]);
    expect(items.map((i) => i.item)).toEqual([
      'source connectivity',
      'destination connectivity',
      'versions',
      'logical decoding',
      'primary key',
    ]);
  });

  it('fails on a wrong destination password without printing it, and on a source without logical decoding', async () => {
    const bad = destination.url().replace(destination.password, 'Wr0ng-pa55');
    let items = await runBasicChecks({
      source: { url: source.url() },
      destination: { url: bad },
      incremental: false,
    });
    const failed = items.find((i) => i.level === 'failed');
    expect(failed?.item).toBe('destination connectivity');
    expect(failed?.message).toContain(
      'password authentication failed for user "postgres"; check the user name and password in the task spec',
    );
    expect(JSON.stringify(items)).not.toContain('Wr0ng-pa55');

    items = await runBasicChecks({
      source: { url: destination.url() },
      destination: { url: source.url() },
      incremental: true,
    });
    expect(items.find((i) => i.item === 'wal_level')).toEqual({
      item: 'wal_level',
      level: 'failed',
      message:
        'source has wal_level = replica; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server',
    });
  });
});
