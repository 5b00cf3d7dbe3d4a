import type { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { listTables } from './catalog';
import { measureRowWidths } from './pg-row-widths';

/**
 * The widest row as records carry it: a compressible TOASTed text counts its whole length, not
 * its compressed size; bytea its bytes; a name that needs quoting works; a large table is
 * sampled and says so.
 */
describe('measureRowWidths', () => {
  let pg: PgCluster;
  let c: Client;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.createDatabase('widths');
    c = await pg.connect('widths');
  });
  afterAll(async () => {
    await c?.end();
    await pg?.stop();
  });

  it('counts raw value lengths, reads small tables whole and samples large ones', async () => {
    await c.query(
      `CREATE TABLE "Wide ""Docs""" (id int PRIMARY KEY, body text, blob bytea, meta jsonb, n bigint)`,
    );
    await c.query(`CREATE TABLE empty (id int PRIMARY KEY, body text)`);
    await c.query(`CREATE TABLE many (id int PRIMARY KEY, body text)`);
    await c.query(
      `INSERT INTO "Wide ""Docs""" VALUES (1, repeat('a', 3000000), NULL, NULL, 1), (2, 'x', '\\x0102'::bytea, '{"a":1}', NULL)`,
    );
    await c.query(`INSERT INTO many SELECT g, repeat('b', 100) FROM generate_series(1, 20000) g`);
    await c.query('ANALYZE');
    // The 3 MB of 'a' compress to a few kB in TOAST: the record still carries 3 MB.
    const stored = await c.query(`SELECT pg_column_size(body) AS s FROM "Wide ""Docs""" WHERE id = 1`);
    expect(stored.rows[0].s).toBeLessThan(100_000);
    const tables = (await listTables(c, 'test')).filter((t) => t.schema === 'public');
    const widths = await measureRowWidths(c, tables, 1024 * 1024);
    const byName = Object.fromEntries(widths.map((w) => [w.table, { bytes: w.bytes, sampled: w.sampled }]));
    // Small on disk (compressed), so read whole; fixed-width columns count their width.
    expect(byName['Wide "Docs"']).toEqual({ bytes: 3_000_000 + 4 + 8, sampled: false });
    expect(byName.empty).toEqual({ bytes: 0, sampled: false });
    // About 3 MB on disk, over the 1 MB limit given: a sample of its pages.
    expect(byName.many).toEqual({ bytes: 4 + 100, sampled: true });
    // Read whole (a table below the limit): exact.
    const exact = await measureRowWidths(c, tables);
    expect(exact.find((w) => w.table === 'many')).toEqual({
      schema: 'public',
      table: 'many',
      bytes: 4 + 100,
      sampled: false,
    });
  });
});
