import type { Clock } from '@pgferry/core';
import { rowsOfLines } from '@pgferry/pg';
import { SnapshotThrottle } from './snapshot-throttle';

function fakeClock(): Clock & { t: number } {
  const c = {
    t: 0,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += ms;
    },
  };
  return c;
}

const lines = (n: number) => rowsOfLines(Array.from({ length: n }, (_, i) => Buffer.from(`${i}\tx`)));

describe('SnapshotThrottle', () => {
  it('cuts a read batch into slices of 25 ms of budget, each sent once it may go', async () => {
    const clock = fakeClock();
    const throttle = new SnapshotThrottle({ rowsPerSecond: 20_000 }, clock);
    const sent: Array<{ rows: number; at: number; first: string }> = [];
    const batch = lines(1000);
    await throttle.rows(batch, 5000, async (slice) => {
      sent.push({
        rows: slice.length,
        at: clock.t,
        first: slice.bufs[0].subarray(slice.starts[0], slice.ends[0]).toString(),
      });
    });
    expect(sent.map((s) => s.rows)).toEqual([500, 500]);
    expect(sent.map((s) => s.first)).toEqual(['0\tx', '500\tx']);
    // The first 1000 rows are the bucket's 50 ms; the next 1000 come a slice per 25 ms.
    expect(sent.map((s) => s.at)).toEqual([0, 0]);
    await throttle.rows(batch, 5000, async (slice) => {
      sent.push({ rows: slice.length, at: clock.t, first: '' });
    });
    expect(sent.slice(2).map((s) => s.at)).toEqual([25, 50]);
    expect(throttle.totals.rows).toBe(2000);
    expect(throttle.batchRows(5000, 10)).toBe(500);
  });

  it('sizes read batches by the bytes limit, and counts each statement against the queries limit', async () => {
    const clock = fakeClock();
    const throttle = new SnapshotThrottle({ bytesPerSecond: 100_000, sourceQueriesPerSecond: 2 }, clock);
    expect(throttle.batchRows(5000, 100)).toBe(25);
    for (let i = 0; i < 5; i++) await throttle.query();
    // A bucket of 0.1 query: each statement after the first waits for a whole one, 500 ms.
    expect(clock.t).toBeGreaterThanOrEqual(4 * 500 - 5);
    expect(throttle.totals.queries).toBe(5);
  });

  it('passes batches whole without limits, and follows a limit set while running', async () => {
    const clock = fakeClock();
    const throttle = new SnapshotThrottle({}, clock);
    const sizes: number[] = [];
    await throttle.rows(lines(5000), 25_000, async (s) => void sizes.push(s.length));
    expect(sizes).toEqual([5000]);
    expect(throttle.batchRows(5000, 5)).toBe(5000);
    throttle.setLimits({ rowsPerSecond: 1000 });
    await throttle.rows(lines(100), 500, async (s) => void sizes.push(s.length));
    expect(sizes.slice(1)).toEqual([25, 25, 25, 25]);
    // 100 rows at 1000 rows/s: the 50 ms bucket, then 50 ms more.
    expect(clock.t).toBe(50);
    expect(throttle.totals.rows).toBe(5100);
  });
});
