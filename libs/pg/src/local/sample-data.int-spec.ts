import { startPostgres, type PgCluster } from '@pgferry/testing';
import { createAllTypes, loadPgbenchLike, tableDigest, TYPE_CASES, USER_TYPE_CASES } from './sample-data';

describe('sample data', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(() => pg?.stop());

  it('creates the all-types table in an awkwardly named schema, with edge values, NULLs and TOAST', async () => {
    const client = await pg.connect();
    try {
      const fixture = await createAllTypes(client, 'Odd "Schema"', 'All Types');
      expect(fixture.columns).toHaveLength(1 + TYPE_CASES.length + USER_TYPE_CASES.length);
      const { rows } = await client.query('SELECT count(*)::int AS n FROM "Odd ""Schema"""."All Types"');
      expect(rows[0].n).toBe(4);
      const nulls = await client.query(
        'SELECT t::text AS r FROM "Odd ""Schema"""."All Types" t WHERE id = 4',
      );
      expect(nulls.rows[0].r).toBe(`(4${','.repeat(fixture.columns.length - 1)})`);
      const edge = await client.query(
        `SELECT c_numeric::text, c_float8::text, c_date::text, c_timestamp::text FROM "Odd ""Schema"""."All Types" WHERE id = 2`,
      );
      expect(edge.rows[0]).toEqual({
        c_numeric: 'NaN',
        c_float8: 'Infinity',
        c_date: 'infinity',
        c_timestamp: '-infinity',
      });
      const toast = await client.query(
        `SELECT octet_length(c_text) AS len, octet_length(c_bytea) AS blen FROM "Odd ""Schema"""."All Types" WHERE id = 3`,
      );
      expect(toast.rows[0]).toEqual({ len: 4000 * 32, blen: 3000 * 16 });
      const digest = await tableDigest(client, 'Odd "Schema"', 'All Types', ['id']);
      expect(digest.count).toBe(4);
      expect(digest.md5).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      await client.end();
    }
  });

  it('loads a pgbench-like dataset of the requested scale', async () => {
    const client = await pg.connect();
    try {
      await loadPgbenchLike(client, { scale: 1, schema: 'bench', mixedRows: 1000 });
      const { rows } = await client.query(`
        SELECT (SELECT count(*) FROM bench.pgbench_accounts)::int AS accounts,
               (SELECT count(*) FROM bench.pgbench_tellers)::int AS tellers,
               (SELECT count(*) FROM bench.pgbench_branches)::int AS branches,
               (SELECT count(*) FROM bench.mixed_rows)::int AS mixed,
               (SELECT relreplident FROM pg_class WHERE oid = 'bench.pgbench_history'::regclass) AS ident`);
      expect(rows[0]).toEqual({ accounts: 100000, tellers: 10, branches: 1, mixed: 1000, ident: 'f' });
    } finally {
      await client.end();
    }
  });
});
