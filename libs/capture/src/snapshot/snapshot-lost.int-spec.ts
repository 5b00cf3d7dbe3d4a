import { resolveEndpoint } from '@pgferry/pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { readChunk, SnapshotLostError } from './pg-chunk-reader';
import { createSlotWithSnapshot } from './pg-snapshot-slot';

describe('the full load when its exported snapshot is gone', () => {
  let source: PgCluster;
  beforeAll(async () => {
    source = await startPostgres({ logical: true });
  });
  afterAll(async () => {
    await source?.stop();
  });

  it('a chunk read after a source restart fails with SNAPSHOT_LOST, saying what happened and how to go on', async () => {
    await source.query(`CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a')`);
    const ep = resolveEndpoint({ url: source.url() }, 'source');
    const exported = await createSlotWithSnapshot(ep, 'pgferry_lost_snapshot', { temporary: true });
    const plan = {
      schema: 'public',
      table: 'items',
      readSchema: 'public',
      readTable: 'items',
      loPage: 0,
      hiPage: null,
      estimatedRows: 1,
    };
    const reader = await source.connect();
    // Under the snapshot while it lives.
    const rows = await readChunk(reader, plan, ['id', 'v'], exported.snapshotName, async () => undefined);
    expect(rows.rows).toBe(1);
    await reader.end();
    await source.restart!();
    await exported.connection.end().catch(() => undefined);
    const after = await source.connect();
    const err = await readChunk(after, plan, ['id', 'v'], exported.snapshotName, async () => undefined).catch(
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(SnapshotLostError);
    expect((err as SnapshotLostError).code).toBe('SNAPSHOT_LOST');
    expect((err as Error).message).toMatch(
      /^the full load's exported snapshot \S+ is gone: the source restarted, or the connection that exported it was lost, while the load ran\. Run pgferry migrate again: it reads the chunks not done yet under fresh snapshots\. For an incremental task that stays consistent: the slot streams every change made since the first snapshot/,
    );
    await after.end();
  });
});
