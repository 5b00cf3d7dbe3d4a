import { Throttle, type Clock } from './throttle';

/** A clock that only moves when the throttle sleeps: the test sees exactly how long it waited. */
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

describe('Throttle', () => {
  it('lets a quarter of a second of budget through at once, then paces to the rate', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rowsPerSecond: 1000 }, clock);
    await throttle.take(250, 0);
    expect(clock.t).toBe(0);
    for (let i = 0; i < 10; i++) await throttle.take(500, 0);
    // 5000 more rows at 1000 rows/s; a transaction larger than the bucket waits for a full one.
    expect(clock.t).toBeGreaterThanOrEqual(4750);
    expect(clock.t).toBeLessThanOrEqual(5000);
    expect(throttle.totals).toEqual({ rows: 5250, bytes: 0 });
  });

  it('waits for the tighter of the two limits', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rowsPerSecond: 1_000_000, bytesPerSecond: 1000 }, clock);
    await throttle.take(10, 250);
    await throttle.take(10, 1000);
    expect(clock.t).toBe(250);
    expect(throttle.waitedMs).toBe(250);
  });

  it('follows new limits while running, and never waits once they are cleared', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rowsPerSecond: 100 }, clock);
    await throttle.take(25, 0);
    await throttle.take(100, 0);
    expect(clock.t).toBe(250);
    throttle.setLimits({ rowsPerSecond: 10 });
    await throttle.take(10, 0);
    expect(clock.t).toBeGreaterThanOrEqual(250 + 750);
    throttle.setLimits({});
    const before = clock.t;
    await throttle.take(1e9, 1e12);
    expect(clock.t).toBe(before);
    expect(throttle.limited).toBe(false);
  });
});
