import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  brokerForTasks,
  captureOutput,
  startPostgres,
  tableDigest,
  waitFor,
  type PgCluster,
} from '@pgferry/testing';
import { requestCutover } from '@pgferry/control';
import { runMigrate } from './migrate-command';
import { runRelease } from './release-command';
import { readTaskStatus } from './api/task-status';

/**
 * Wide rows (issue 19 item 9): a value five times Kafka's default message limit (1 MiB) goes
 * through the snapshot and through the stream, on both brokers, and arrives whole. The precheck
 * measures the widest row and the topics are created to carry it.
 */
describe('pgferry migrate: a 5 MB value', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-wide-'));
  let tasks: Awaited<ReturnType<typeof brokerForTasks>>;
  beforeAll(async () => {
    tasks = await brokerForTasks();
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
  });
  afterAll(async () => {
    await tasks?.stop();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** 5 MB of text that does not compress (md5 hex of a counter), and 5 MB of random bytes. */
  const WIDE_TEXT = `(SELECT string_agg(md5(g::text || $1::text), '') FROM generate_series(1, 164000) g)`;
  const WIDE_BYTES = `(SELECT string_agg(decode(md5(g::text || $1::text), 'hex'), ''::bytea) FROM generate_series(1, 328000) g)`;

  it.each([
    ['per-key', 'wide'],
    ['transactional', 'widetx'],
  ] as const)(
    '%s: is copied in the snapshot and streamed as an insert and an update, tables equal',
    async (consistency, name) => {
      await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
      const s = await source.connect(name);
      const d = await destination.connect(name);
      await s.query(`CREATE TABLE docs (id int PRIMARY KEY, body text, blob bytea)`);
      await s.query(`INSERT INTO docs SELECT g, 'small ' || g, NULL FROM generate_series(1, 50) g`);
      await s.query(`INSERT INTO docs VALUES (100, ${WIDE_TEXT}, ${WIDE_BYTES})`, ['snapshot']);
      const { rows } = await s.query(
        `SELECT octet_length(body) AS t, octet_length(blob) AS b FROM docs WHERE id = 100`,
      );
      expect(rows[0]).toEqual({ t: 5_248_000, b: 5_248_000 });
      const spec = join(dir, `${name}.json`);
      writeFileSync(
        spec,
        JSON.stringify({
          name,
          source: { url: source.url(name) },
          destination: { url: destination.url(name) },
          migrationTypes: { incremental: true },
          options: { consistency },
        }),
      );
      const workDir = join(dir, name);
      const out = captureOutput();
      let ended = false;
      let failure = '';
      const migration = runMigrate({ spec, workDir, inProcess: true, out: out.out }).finally(() => {
        ended = true;
      });
      migration.catch((err: Error) => (failure = err.message));
      migration.catch(() => undefined);
      // The stream applies a first mark once the snapshot (the wide row with it) is in; a task
      // that fails on the way ends first, and its output says why.
      await waitFor(
        async () =>
          ended ? 'ended' : ((await readTaskStatus(d, name).catch(() => null))?.stream?.appliedLsn ?? null),
        { reason: 'the stream to apply a first mark', until: (lsn) => lsn !== null, timeout: 180_000 },
      );
      expect({ ended, failure, out: ended ? out.text() : '' }).toEqual({
        ended: false,
        failure: '',
        out: '',
      });
      await s.query(`INSERT INTO docs VALUES (101, ${WIDE_TEXT}, ${WIDE_BYTES})`, ['stream insert']);
      await s.query(`UPDATE docs SET body = ${WIDE_TEXT}, blob = ${WIDE_BYTES} WHERE id = 1`, [
        'stream update',
      ]);
      await requestCutover(d, name);
      const done = await migration;
      expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });
      // The precheck measured the row (two 5 MB values and an int) and sized the topic for it:
      // twice the row (a change may carry it as before and after) plus headroom, in whole MiB.
      expect(out.text()).toContain(
        'kafka message size        the widest row ("public"."docs") holds 10.0 MB; the table topics take records up to max.message.bytes 22020096',
      );
      const digest = (c: Client) => tableDigest(c, 'public', 'docs', ['id']);
      expect(await digest(d)).toEqual(await digest(s));
      const wide = await d.query(
        `SELECT id, octet_length(body) AS t, octet_length(blob) AS b FROM docs WHERE octet_length(body) > 1000000 ORDER BY id`,
      );
      expect(wide.rows).toEqual([
        { id: 1, t: 5_248_000, b: 5_248_000 },
        { id: 100, t: 5_248_000, b: 5_248_000 },
        { id: 101, t: 5_248_000, b: 5_248_000 },
      ]);
      expect(await runRelease({ spec, workDir }, captureOutput().out)).toBe(0);
      await Promise.all([s.end(), d.end()]);
    },
    400_000,
  );
});
