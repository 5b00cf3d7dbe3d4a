import type { Client } from 'pg';
import { parseLsn } from '@pgferry/pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { ensureControlSchema } from './control-schema';
import { storeOffsets } from './offsets';
import { applierGroup, markCoverage, readStreamLag, writeCaptureReport } from './stream-status';

/**
 * The stream marks a capture records on the destination against the offsets its applier
 * stores: what the lag and the cutover take as applied, and how a mark is described when the
 * cutover doubts it.
 */
describe('stream marks', () => {
  let pg: PgCluster;
  let c: Client;
  beforeAll(async () => {
    pg = await startPostgres();
    await pg.createDatabase('marks');
    c = await pg.connect('marks');
    await ensureControlSchema(c);
    await c.query(`INSERT INTO pgferry.tasks (task, spec) VALUES ('Task "één"', '{}')`);
  });
  afterAll(async () => {
    await c?.end();
    await pg?.stop();
  });

  const task = 'Task "één"';
  const report = (lsn: string) => ({
    sourceLsn: parseLsn(lsn),
    capturedLsn: parseLsn(lsn),
    captureLagMs: 1,
    published: 1,
  });
  const mark = (lsn: string, ends: Record<string, bigint>) => ({
    lsn: parseLsn(lsn),
    commitTime: new Date(),
    ends: new Map(Object.entries(ends)),
  });
  const applied = async (ends: Record<string, bigint>) =>
    storeOffsets(
      c,
      applierGroup(task),
      Object.entries(ends).map(([k, nextOffset]) => ({
        topic: k.slice(0, k.lastIndexOf(':')),
        partition: Number(k.slice(k.lastIndexOf(':') + 1)),
        nextOffset,
      })),
    );

  it('takes a mark as applied only once the stored offsets reach every partition end it names, and names the ones short of it', async () => {
    await writeCaptureReport(c, task, report('0/100'), mark('0/100', { 'p.a:0': 5n, 'p.b:1': 3n }));
    await writeCaptureReport(c, task, report('0/200'), mark('0/200', { 'p.a:0': 9n, 'p.b:1': 3n }));
    expect((await readStreamLag(c, task, 5)).appliedLsn).toBeNull();
    await applied({ 'p.a:0': 5n });
    // One partition short (p.b:1 was never stored): nothing is applied yet.
    expect((await readStreamLag(c, task, 5)).appliedLsn).toBeNull();
    await applied({ 'p.b:1': 3n });
    expect((await readStreamLag(c, task, 5)).appliedLsn).toBe('0/100');
    expect(await markCoverage(c, task, parseLsn('0/200'))).toBe('p.a:0 9/5, p.b:1 3/3');
    await applied({ 'p.a:0': 9n });
    expect((await readStreamLag(c, task, 5)).appliedLsn).toBe('0/200');
    // The next report prunes the marks older than the applied one.
    await writeCaptureReport(c, task, report('0/300'), mark('0/300', { 'p.a:0': 12n, 'p.b:1': 3n }));
    expect(await markCoverage(c, task, parseLsn('0/100'))).toBeNull();
    expect(await markCoverage(c, task, parseLsn('0/300'))).toBe('p.a:0 12/9, p.b:1 3/3');
  });

  it('says so of a mark that names no partition at all (it counts as applied whatever is stored)', async () => {
    await writeCaptureReport(c, task, report('0/400'), mark('0/400', {}));
    expect(await markCoverage(c, task, parseLsn('0/400'))).toBe('no partitions');
    expect((await readStreamLag(c, task, 5)).appliedLsn).toBe('0/400');
  });
});
