import { loadPgbenchLike } from '@pgferry/pg';
import { runPgbench } from './pgbench';
import { startPostgres, type PgCluster } from './postgres';

describe('runPgbench', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('runs TPC-B-like transactions on loadPgbenchLike tables in a schema', async () => {
    const client = await pg.connect();
    try {
      await loadPgbenchLike(client, { scale: 1, schema: 'Bench Ü' });
    } finally {
      await client.end();
    }
    const result = await runPgbench(pg, {
      database: 'postgres',
      schema: 'Bench Ü',
      clients: 2,
      transactionsPerClient: 25,
    });
    expect(result).toMatchObject({ transactions: 50, failed: 0 });
    expect(result.tps).toBeGreaterThan(0);
    const [h] = await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM "Bench Ü".pgbench_history`);
    expect(h.n).toBe(50);
  });

  it('rejects with pgbench output when the tables are missing', async () => {
    await expect(runPgbench(pg, { database: 'postgres', schema: 'nope' })).rejects.toThrow(
      /pgbench exited with \d+:[\s\S]*pgbench_/,
    );
  });
});
