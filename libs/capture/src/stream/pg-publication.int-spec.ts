import type { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { installDdlCapture } from '../ddl/pg-ddl-capture';
import { ensureHeartbeatTable } from './pg-heartbeat';
import { dropPublication, ensurePublication } from './pg-publication';

describe('task publication', () => {
  let pg: PgCluster;
  let client: Client;
  beforeAll(async () => {
    pg = await startPostgres({ logical: true });
    client = await pg.connect();
    await client.query(`
      CREATE SCHEMA "Odd ""Schema""";
      CREATE TABLE "Odd ""Schema"""."Mixed Case" (id int PRIMARY KEY);
      CREATE TABLE public.plain (id int PRIMARY KEY);
      CREATE TABLE public.ev (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
      CREATE TABLE public.ev_1 PARTITION OF public.ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');`);
  });
  afterAll(async () => {
    await client?.end();
    await pg?.stop();
  });

  const published = async (pub: string) =>
    (
      await client.query(
        `SELECT n.nspname || '.' || c.relname AS t FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
           JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1 ORDER BY 1`,
        [pub],
      )
    ).rows.map((r) => r.t);

  it('holds exactly the selection (quoted names, partitioned through the root), idempotently, and follows changes', async () => {
    const first = await ensurePublication(client, 'shop', [
      { schema: 'Odd "Schema"', table: 'Mixed Case' },
      { schema: 'public', table: 'ev', partitioned: true },
    ]);
    expect(first).toEqual({
      publication: 'pgferry_shop',
      created: true,
      added: ['"Odd ""Schema"""."Mixed Case"', '"public"."ev"'],
      removed: [],
    });
    const [p] = (
      await client.query(
        `SELECT pubinsert, pubupdate, pubdelete, pubtruncate, pubviaroot FROM pg_publication WHERE pubname = 'pgferry_shop'`,
      )
    ).rows;
    expect(p).toEqual({
      pubinsert: true,
      pubupdate: true,
      pubdelete: true,
      pubtruncate: true,
      pubviaroot: true,
    });
    expect(
      await ensurePublication(client, 'shop', [
        { schema: 'Odd "Schema"', table: 'Mixed Case' },
        { schema: 'public', table: 'ev', partitioned: true },
      ]),
    ).toEqual({ publication: 'pgferry_shop', created: false, added: [], removed: [] });

    // The selection changes; the task's own DDL and heartbeat tables join once they exist.
    await installDdlCapture(client, 'shop', ['public']);
    await ensureHeartbeatTable(client, 'shop');
    const changed = await ensurePublication(client, 'shop', [{ schema: 'public', table: 'plain' }]);
    expect(changed.added.sort()).toEqual([
      '"pgferry"."ddl_shop"',
      '"pgferry"."heartbeat_shop"',
      '"public"."plain"',
    ]);
    expect(changed.removed.sort()).toEqual(['"Odd ""Schema"""."Mixed Case"', '"public"."ev"']);
    expect(await published('pgferry_shop')).toEqual([
      'pgferry.ddl_shop',
      'pgferry.heartbeat_shop',
      'public.plain',
    ]);

    expect(await dropPublication(client, 'shop')).toBe(true);
    expect(await dropPublication(client, 'shop')).toBe(false);
  });

  it('carries row filters and column lists, publishes the union of the operations, and drops a filter the spec no longer has', async () => {
    await client.query(`CREATE TABLE public.shaped (id int PRIMARY KEY, region text, note text);
                        ALTER TABLE public.shaped REPLICA IDENTITY FULL`);
    const shape = async () =>
      (
        await client.query(
          `SELECT pg_get_expr(pr.prqual, pr.prrelid) AS qual, pr.prattrs::text AS attrs, p.pubdelete, p.pubtruncate
             FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
            WHERE p.pubname = 'pgferry_shaped' AND pr.prrelid = 'public.shaped'::regclass`,
        )
      ).rows;
    await ensurePublication(client, 'shaped', [
      { schema: 'public', table: 'shaped', where: "region = 'eu'", operations: ['insert', 'update'] },
      { schema: 'public', table: 'plain', columns: ['id'], operations: ['insert', 'delete'] },
    ]);
    expect(await shape()).toEqual([
      { qual: "(region = 'eu'::text)", attrs: null, pubdelete: true, pubtruncate: false },
    ]);
    await ensurePublication(client, 'shaped', [{ schema: 'public', table: 'shaped' }]);
    expect(await shape()).toEqual([{ qual: null, attrs: null, pubdelete: true, pubtruncate: true }]);
    expect(await published('pgferry_shaped')).toEqual(['public.shaped']);
    await dropPublication(client, 'shaped');
  });

  it('refuses to adopt a FOR ALL TABLES publication of the same name', async () => {
    await client.query(`CREATE PUBLICATION pgferry_all FOR ALL TABLES`);
    await expect(ensurePublication(client, 'all', [])).rejects.toThrow(
      /FOR ALL TABLES, so it is not pgferry's/,
    );
    await client.query(`DROP PUBLICATION pgferry_all`);
  });
});
