import { startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { loadPgbenchLike } from './sample-data';
import { startSampleWorkload } from './sample-workload';

describe('sample workload', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.createDatabase('workload');
    const client = await pg.connect('workload');
    try {
      await loadPgbenchLike(client, { scale: 1, mixedRows: 1000 });
    } finally {
      await client.end();
    }
  });
  afterAll(() => pg?.stop());

  it('commits TPC-B-like and mixed_rows transactions from several writers, each counted once, until stopped', async () => {
    const workload = await startSampleWorkload({
      connect: () => pg.connect('workload'),
      writers: 3,
      rate: 150,
      scale: 1,
      mixedRows: 1000,
    });
    await waitFor(() => workload.counts().mixed >= 5, {
      reason: 'the writers to commit a few mixed_rows transactions',
      timeout: 30_000,
    });
    const counts = await workload.stop();
    expect(await workload.stop()).toEqual(counts);
    expect(workload.failure()).toBeNull();
    const [row] = await pg.query<{ history: string; inserted: string; balance: string; branches: string }>(
      `SELECT (SELECT count(*) FROM pgbench_history) AS history,
              (SELECT count(*) FROM mixed_rows WHERE id > 1000) AS inserted,
              (SELECT sum(delta) FROM pgbench_history) AS balance,
              (SELECT sum(bbalance) FROM pgbench_branches) AS branches`,
      [],
      'workload',
    );
    // Every counted transaction committed whole: one history row each, and balances that add up.
    expect(Number(row.history)).toBe(counts.tpcb);
    expect(Number(row.inserted)).toBe(counts.mixed);
    expect(row.branches).toBe(row.balance);
  });

  it('stops every writer at the first failure and reports it', async () => {
    await pg.query('CREATE DATABASE broken');
    const client = await pg.connect('broken');
    try {
      await loadPgbenchLike(client, { scale: 1 });
      await client.query('DROP TABLE pgbench_history');
    } finally {
      await client.end();
    }
    const workload = await startSampleWorkload({ connect: () => pg.connect('broken'), writers: 2, scale: 1 });
    await waitFor(() => workload.failure(), { reason: 'a writer to fail', timeout: 30_000 });
    expect(workload.failure()!.message).toMatch(/relation "public.pgbench_history" does not exist/);
    expect(await workload.stop()).toEqual({ tpcb: 0, mixed: 0 });
  });
});
