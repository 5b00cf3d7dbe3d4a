import type { Client } from 'pg';
import { ConnectionError, ObjectError, TransientError, isRetriable } from '@pgferry/core';
import { connect, type Endpoint, parseLsn, type Lsn } from '@pgferry/pg';
import { startPostgres, waitFor, type PgCluster } from '@pgferry/testing';
import { UNCHANGED_TOAST, type ChangeEvent, type CommitEvent } from '../change-event';
import { PgStreamReader, type PgStreamReaderOptions } from './pg-stream-reader';
import { ensurePublication } from './pg-publication';
import { ensureHeartbeatTable, heartbeatLagMs, startHeartbeat } from './pg-heartbeat';

/** A running reader and everything it delivered so far. */
interface Run {
  reader: PgStreamReader;
  events: ChangeEvent[];
  done: Promise<unknown>;
  commits(): CommitEvent[];
}

describe('cdc stream reader (pgoutput over a replication connection)', () => {
  let pg: PgCluster;
  let dbCount = 0;
  beforeAll(async () => {
    // 64kB makes the server stream any transaction of more than a few hundred rows (protocol 2).
    pg = await startPostgres({ logical: true, settings: { logical_decoding_work_mem: '64kB' } });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  /** A database of its own with `ddl`, a publication over its public tables and a fresh slot. */
  async function setUp(ddl: string) {
    const db = `cdc_${++dbCount}`;
    await pg.createDatabase(db);
    const endpoint: Endpoint = {
      host: pg.host,
      port: pg.port,
      database: db,
      user: pg.user,
      password: pg.password,
      ssl: { mode: 'disable' },
    };
    const client = await connect(endpoint, 'source');
    await client.query(ddl);
    const task = `t${dbCount}`;
    const { rows } = await client.query(
      `SELECT n.nspname AS schema, c.relname AS table, c.relkind = 'p' AS partitioned FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition`,
    );
    await ensurePublication(client, task, rows);
    const slot = `pgferry_${task}`;
    const created = await client.query(
      `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`,
      [slot],
    );
    return {
      endpoint,
      client,
      task,
      slot,
      publication: `pgferry_${task}`,
      startLsn: parseLsn(created.rows[0].lsn),
    };
  }

  function run(options: PgStreamReaderOptions, onEvent?: (e: ChangeEvent, r: PgStreamReader) => void): Run {
    const reader = new PgStreamReader(options);
    const events: ChangeEvent[] = [];
    const done = reader
      .run({
        process: (e) => {
          events.push(e);
          onEvent?.(e, reader);
          return undefined;
        },
      })
      .then(
        () => 'stopped',
        (err: unknown) => err,
      );
    return {
      reader,
      events,
      done,
      commits: () => events.filter((e): e is CommitEvent => e.kind === 'commit'),
    };
  }

  const data = (events: ChangeEvent[]) =>
    events
      .filter(
        (e) => e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete' || e.kind === 'truncate',
      )
      .map((e) => {
        if (e.kind === 'truncate')
          return {
            kind: e.kind,
            tables: e.relations.map((r) => r.table),
            cascade: e.cascade,
            restartIdentity: e.restartIdentity,
          };
        return {
          kind: e.kind,
          table: e.relation.table,
          ...('old' in e ? { old: e.old, oldKind: e.oldKind } : {}),
          ...('new' in e ? { new: e.new } : {}),
        };
      });

  async function confirmedFlush(client: Client, slot: string): Promise<Lsn> {
    const { rows } = await client.query(
      `SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    return parseLsn(rows[0].l);
  }

  it('delivers insert, update, delete and truncate with the images of default and full replica identity', async () => {
    const s = await setUp(`
      CREATE TABLE public.a (id int PRIMARY KEY, v text, big text);
      ALTER TABLE public.a ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE public."B full" (id int PRIMARY KEY, v text, n int);
      ALTER TABLE public."B full" REPLICA IDENTITY FULL;`);
    const big = 'x'.repeat(5000);
    try {
      const r = run({ ...s, statusIntervalMs: 500 });
      await s.client.query(`INSERT INTO public.a VALUES (1, 'one', $1)`, [big]);
      await s.client.query(`INSERT INTO public."B full" VALUES (1, 'p', NULL)`);
      await s.client.query(`UPDATE public.a SET v = 'one!' WHERE id = 1`); // big is TOASTed and untouched
      await s.client.query(`UPDATE public.a SET id = 2 WHERE id = 1`); // key change: old key, new row
      await s.client.query(`UPDATE public."B full" SET v = 'q' WHERE id = 1`);
      await s.client.query(`DELETE FROM public.a WHERE id = 2`);
      await s.client.query(`DELETE FROM public."B full" WHERE id = 1`);
      await s.client.query(`INSERT INTO public.a VALUES (3, NULL, 'small')`);
      await s.client.query(`TRUNCATE public.a, public."B full" RESTART IDENTITY`);
      await waitFor(() => r.commits().length, { reason: '9 transactions streamed', until: (n) => n >= 9 });
      expect(data(r.events)).toEqual([
        { kind: 'insert', table: 'a', new: ['1', 'one', big] },
        { kind: 'insert', table: 'B full', new: ['1', 'p', null] },
        { kind: 'update', table: 'a', new: ['1', 'one!', UNCHANGED_TOAST] },
        {
          kind: 'update',
          table: 'a',
          old: ['1', null, null],
          oldKind: 'key',
          new: ['2', 'one!', UNCHANGED_TOAST],
        },
        { kind: 'update', table: 'B full', old: ['1', 'p', null], oldKind: 'full', new: ['1', 'q', null] },
        { kind: 'delete', table: 'a', old: ['2', null, null], oldKind: 'key' },
        { kind: 'delete', table: 'B full', old: ['1', 'q', null], oldKind: 'full' },
        { kind: 'insert', table: 'a', new: ['3', null, 'small'] },
        { kind: 'truncate', tables: ['a', 'B full'], cascade: false, restartIdentity: true },
      ]);
      const rel = r.events.find((e) => e.kind === 'relation' && e.relation.table === 'a');
      expect(rel).toMatchObject({
        relation: {
          schema: 'public',
          replicaIdentity: 'default',
          columns: [
            { name: 'id', typeOid: 23, typeName: 'integer', key: true },
            { name: 'v', typeOid: 25, typeName: 'text', key: false },
            { name: 'big', typeOid: 25, typeName: 'text', key: false },
          ],
        },
      });
      // Every data event sits between its begin and commit; commits count per table; LSNs grow.
      const commits = r.commits();
      expect(commits.at(-1)!.counts).toEqual([
        { schema: 'public', table: 'a', events: 1 },
        { schema: 'public', table: 'B full', events: 1 },
      ]);
      expect(commits.map((c) => c.endLsn)).toEqual(
        [...commits.map((c) => c.endLsn)].sort((x, y) => (x < y ? -1 : 1)),
      );
      expect(r.events.filter((e) => e.kind === 'begin')).toHaveLength(9);
      await r.reader.stop();
      expect(await r.done).toBe('stopped');
    } finally {
      await s.client.end();
    }
  });

  it('streams a 200k-row transaction whole and in order through the spill file, and an aborted one (or aborted savepoint) yields nothing', async () => {
    const s = await setUp(`CREATE TABLE public.big (id int PRIMARY KEY, v text);`);
    try {
      // 256 kB of memory for in-progress transactions: the big one spills to disk.
      const r = run({ ...s, spoolMemoryBytes: 256 << 10 });
      await s.client.query(`INSERT INTO public.big SELECT g, 'row ' || g FROM generate_series(1, 200000) g`);
      await s.client.query(
        `BEGIN; INSERT INTO public.big SELECT g, 'gone' FROM generate_series(300001, 350000) g; ROLLBACK`,
      );
      await s.client.query(`BEGIN;
        INSERT INTO public.big SELECT g, 'kept' FROM generate_series(400001, 420000) g;
        SAVEPOINT s1;
        INSERT INTO public.big SELECT g, 'gone' FROM generate_series(420001, 440000) g;
        SAVEPOINT s2;
        INSERT INTO public.big SELECT g, 'gone' FROM generate_series(440001, 450000) g;
        ROLLBACK TO SAVEPOINT s1;
        INSERT INTO public.big SELECT g, 'kept' FROM generate_series(460001, 470000) g;
        COMMIT`);
      await s.client.query(`INSERT INTO public.big VALUES (0, 'marker')`);
      await waitFor(() => r.commits().length, {
        reason: 'the three committed transactions',
        until: (n) => n >= 3,
        timeout: 120_000,
        interval: 200,
      });
      const [stats] = (
        await s.client.query(
          `SELECT stream_txns::int AS n FROM pg_stat_replication_slots WHERE slot_name = $1`,
          [s.slot],
        )
      ).rows;
      expect(stats.n).toBeGreaterThanOrEqual(3); // the server really streamed them in progress
      const commits = r.commits();
      expect(commits.map((c) => c.counts)).toEqual([
        [{ schema: 'public', table: 'big', events: 200000 }],
        [{ schema: 'public', table: 'big', events: 30000 }],
        [{ schema: 'public', table: 'big', events: 1 }],
      ]);
      const ids = r.events
        .filter((e) => e.kind === 'insert')
        .map((e) => Number((e as { new: string[] }).new[0]));
      const expected = [
        ...Array.from({ length: 200000 }, (_, i) => i + 1),
        ...Array.from({ length: 20000 }, (_, i) => 400001 + i),
        ...Array.from({ length: 10000 }, (_, i) => 460001 + i),
        0,
      ];
      expect(ids.length).toBe(expected.length);
      expect(ids.every((id, i) => id === expected[i])).toBe(true);
      expect(r.events.some((e) => e.kind === 'insert' && e.new[1] === 'gone')).toBe(false);
      // begin/commit bracket each transaction exactly.
      expect(r.events.filter((e) => e.kind === 'begin' || e.kind === 'commit').map((e) => e.kind)).toEqual([
        'begin',
        'commit',
        'begin',
        'commit',
        'begin',
        'commit',
      ]);
      await r.reader.stop();
    } finally {
      await s.client.end();
    }
  });

  it('moves the slot only to what was confirmed, and a restart re-delivers exactly the rest', async () => {
    const s = await setUp(`CREATE TABLE public.t (id int PRIMARY KEY);`);
    try {
      const first = run({ ...s, statusIntervalMs: 100 });
      for (const id of [1, 2, 3]) await s.client.query(`INSERT INTO public.t VALUES (${id})`);
      await waitFor(() => first.commits().length, { reason: 'three commits', until: (n) => n === 3 });
      const [c1] = first.commits();
      first.reader.confirm(c1.endLsn);
      await waitFor(() => confirmedFlush(s.client, s.slot), {
        reason: 'slot confirmed at the first commit',
        until: (l) => l === c1.endLsn,
      });
      // Status updates keep flowing (keepalives are answered) but never pass the confirmed LSN.
      const [{ t0 }] = (await s.client.query(`SELECT now() AS t0`)).rows;
      await waitFor(
        async () =>
          (
            await s.client.query(
              `SELECT reply_time > $1 AS fresh FROM pg_stat_replication WHERE application_name = $2`,
              [t0, `pgferry ${s.slot}`],
            )
          ).rows[0]?.fresh,
        { reason: 'a status update after confirming' },
      );
      expect(await confirmedFlush(s.client, s.slot)).toBe(c1.endLsn);
      await first.reader.stop();
      expect(await first.done).toBe('stopped');
      expect(await confirmedFlush(s.client, s.slot)).toBe(c1.endLsn);

      // Restart from the original position: the server skips what the slot has confirmed.
      const second = run({ ...s, statusIntervalMs: 100 });
      await waitFor(() => second.commits().length, {
        reason: 'the two unconfirmed commits again',
        until: (n) => n >= 2,
      });
      await s.client.query(`INSERT INTO public.t VALUES (4)`);
      await waitFor(() => second.commits().length, { reason: 'a new commit', until: (n) => n >= 3 });
      expect(data(second.events).map((e) => ('new' in e ? e.new : null))).toEqual([['2'], ['3'], ['4']]);
      await second.reader.stop();
    } finally {
      await s.client.end();
    }
  });

  it('keeps an idle slot moving with heartbeats, measures lag from them, and offers keepalives to confirm', async () => {
    const s = await setUp(`CREATE TABLE public.t (id int PRIMARY KEY);`);
    await ensureHeartbeatTable(s.client, s.task);
    await ensurePublication(s.client, s.task, [{ schema: 'public', table: 't' }]);
    const lags: number[] = [];
    let keepalives = 0;
    const r = run({ ...s, statusIntervalMs: 100 }, (e, reader) => {
      const lag = heartbeatLagMs(e, s.task);
      if (lag !== null) lags.push(lag);
      if (e.kind === 'commit') reader.confirm(e.endLsn);
      if (e.kind === 'keepalive') keepalives++;
    });
    const hb = startHeartbeat(s.endpoint, s.task, { intervalMs: 100 });
    try {
      // WAL written elsewhere (another database) must not stay held by this slot.
      await pg.query(`CREATE TABLE elsewhere AS SELECT g FROM generate_series(1, 1000) g`);
      const [{ lsn }] = await pg.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      await waitFor(() => confirmedFlush(s.client, s.slot), {
        reason: 'the slot confirmed past WAL written by another database',
        until: (l) => l > parseLsn(lsn),
        timeout: 30_000,
      });
      expect(lags.length).toBeGreaterThan(0);
      expect(lags.every((l) => l >= 0 && l < 30_000)).toBe(true);
      await s.client.query(`SELECT pg_switch_wal()`).catch(() => undefined);
      await waitFor(() => keepalives, { reason: 'a keepalive outside any transaction', timeout: 30_000 });
    } finally {
      await hb.stop();
      await r.reader.stop();
      await s.client.end();
    }
  });

  it('classifies a missing slot, a missing publication, a slot in use and a dropped connection', async () => {
    const s = await setUp(`CREATE TABLE public.t (id int PRIMARY KEY);`);
    try {
      const noSlot = await run({ ...s, slot: 'pgferry_nope' }).done;
      expect(noSlot).toBeInstanceOf(ObjectError);
      expect((noSlot as Error).message).toMatch(
        /replication slot pgferry_nope does not exist.*new full load/,
      );
      expect((noSlot as Error).message).not.toContain(pg.password);

      const noPub = await run({ ...s, publication: 'pgferry_nope' }).done;
      expect(noPub).toBeInstanceOf(ObjectError);
      expect((noPub as Error).message).toMatch(/publication "pgferry_nope" does not exist/);

      // Someone else streams the slot.
      const other = await connect(s.endpoint, 'source', {
        replication: 'database',
        applicationName: 'someone else',
      });
      const otherStream = other
        .query(
          `START_REPLICATION SLOT ${s.slot} LOGICAL 0/0 (proto_version '1', publication_names '${s.publication}')`,
        )
        .catch(() => undefined);
      await waitFor(
        async () =>
          (await s.client.query(`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, [s.slot]))
            .rows[0].active,
        { reason: 'the other consumer holds the slot' },
      );
      const inUse = await run(s).done;
      expect(inUse).toBeInstanceOf(ObjectError);
      expect((inUse as Error).message).toMatch(/in use by process \d+ \(someone else\); stop that consumer/);
      await other.end();
      await otherStream;
      await waitFor(
        async () =>
          !(await s.client.query(`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, [s.slot]))
            .rows[0].active,
        { reason: 'the slot released' },
      );

      // Our own stream killed on the server: retriable, naming the slot.
      const r = run(s);
      const pid = await waitFor(
        async () =>
          (await s.client.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [s.slot]))
            .rows[0].active_pid,
        { reason: 'the reader streams' },
      );
      // A second reader of the same task while the first still holds the slot: transient.
      const twin = await run(s).done;
      expect(twin).toBeInstanceOf(TransientError);
      await s.client.query(`SELECT pg_terminate_backend($1)`, [pid]);
      const dropped = await r.done;
      expect(dropped).toBeInstanceOf(ConnectionError);
      expect(isRetriable(dropped)).toBe(true);
      expect((dropped as Error).message).toContain(`slot ${s.slot}`);
    } finally {
      await s.client.end();
    }
  });
});
