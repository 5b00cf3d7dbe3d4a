import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { quoteIdent } from '@pgferry/pg';
import { findPgBinDir, startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { installDdlCapture } from '@pgferry/capture';
import { releaseSource, taskSourceObjects } from './pg-source-release';

async function leftovers(pg: PgCluster) {
  const [r] = await pg.query<{ slots: string[]; pubs: string[]; triggers: string[]; schemas: string[] }>(
    `SELECT ARRAY(SELECT slot_name::text FROM pg_replication_slots ORDER BY 1) AS slots,
            ARRAY(SELECT pubname::text FROM pg_publication ORDER BY 1) AS pubs,
            ARRAY(SELECT evtname::text FROM pg_event_trigger ORDER BY 1) AS triggers,
            ARRAY(SELECT nspname::text FROM pg_namespace WHERE nspname = 'pgferry') AS schemas`,
  );
  return r;
}

describe('release', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres({ logical: true });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  async function setUp(task: string) {
    const o = taskSourceObjects(task);
    await pg.query(`CREATE TABLE IF NOT EXISTS public.t (id int PRIMARY KEY)`);
    await pg.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [o.slot]);
    await pg.query(`CREATE PUBLICATION ${quoteIdent(o.publication)} FOR TABLE public.t`);
    const client = await pg.connect();
    try {
      await installDdlCapture(client, task, ['public']);
      await client.query(`CREATE TABLE ${o.heartbeatTable} (id int PRIMARY KEY, at timestamptz)`);
    } finally {
      await client.end();
    }
  }

  it('drops the slot, publication, heartbeat table and DDL capture, and a second run finds nothing', async () => {
    await setUp('shop');
    await pg.query(`SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')`);
    const client = await pg.connect();
    try {
      const first = await releaseSource(client, 'shop');
      expect(first.leftBehind).toEqual([]);
      expect(first.dropped).toEqual([
        'replication slot pgferry_shop',
        'publication "pgferry_shop"',
        'table "pgferry"."heartbeat_shop"',
        'event trigger "pgferry_shop_ddl"',
        'event trigger "pgferry_shop_drop"',
        'function "pgferry"."ddl_shop_capture"()',
        'table "pgferry"."ddl_shop"',
        'schema "pgferry"',
      ]);
      expect(await leftovers(pg)).toEqual({ slots: ['someone_else'], pubs: [], triggers: [], schemas: [] });
      expect(await releaseSource(client, 'shop')).toEqual({ dropped: [], leftBehind: [] });
    } finally {
      await client.end();
      await pg.query(`SELECT pg_drop_replication_slot('someone_else')`);
    }
  });

  it('reports a slot in use with the process and the statement, and drops everything else', async () => {
    await setUp('busy');
    // A real streaming client holds the slot: pg_recvlogical from the PostgreSQL binaries.
    const recv = spawn(
      join(findPgBinDir()!, 'pg_recvlogical'),
      [
        '-h',
        pg.host,
        '-p',
        String(pg.port),
        '-U',
        pg.user,
        '-d',
        'postgres',
        '-S',
        'pgferry_busy',
        '-o',
        'proto_version=1',
        '-o',
        'publication_names=pgferry_busy',
        '--start',
        '-f',
        '/dev/null',
      ],
      { env: { ...process.env, PGPASSWORD: pg.password }, stdio: 'ignore' },
    );
    const client = await pg.connect();
    try {
      await waitFor(
        async () =>
          (
            await pg.query<{ active: boolean }>(
              `SELECT active FROM pg_replication_slots WHERE slot_name = 'pgferry_busy'`,
            )
          )[0]?.active,
        { reason: 'pg_recvlogical to hold the slot', until: (a) => a === true },
      );
      const result = await releaseSource(client, 'busy');
      expect(result.leftBehind).toEqual([
        {
          object: 'replication slot pgferry_busy',
          reason: expect.stringMatching(
            /^in use by process \d+ \(pg_recvlogical\): stop the task's capture first; until the slot is dropped the source keeps every WAL segment from its position$/,
          ),
          fix: "SELECT pg_drop_replication_slot('pgferry_busy');",
        },
      ]);
      expect(result.dropped).toContain('publication "pgferry_busy"');
      recv.kill('SIGTERM');
      await waitFor(
        async () =>
          (
            await pg.query<{ active: boolean }>(
              `SELECT active FROM pg_replication_slots WHERE slot_name = 'pgferry_busy'`,
            )
          )[0]?.active,
        { reason: 'pg_recvlogical to let go of the slot', until: (a) => a === false },
      );
      expect((await releaseSource(client, 'busy')).dropped).toEqual(['replication slot pgferry_busy']);
      expect(await leftovers(pg)).toEqual({ slots: [], pubs: [], triggers: [], schemas: [] });
    } finally {
      recv.kill('SIGKILL');
      await client.end();
    }
  });
});
