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
  it('lets one second of budget through at once, then paces to the rate', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rowsPerSecond: 1000 }, clock);
    await throttle.take(1000, 0);
    expect(clock.t).toBe(0);
    for (let i = 0; i < 10; i++) await throttle.take(500, 0);
    // 5000 more rows at 1000 rows/s.
    expect(clock.t).toBe(5000);
  });

  it('waits for the tighter of the two limits', async () => {
    const clock = fakeClock();
    const throttle = new Throttle({ rowsPerSecond: 1_000_000, bytesPerSecond: 1000 }, clock);
    await throttle.take(10, 1000);
    await throttle.take(10, 3000); // larger than a second of budget: waits for a full bucket, goes into debt
    await throttle.take(10, 1000);
    expect(clock.t).toBe(1000 + 3000);
    expect(throttle.waitedMs).toBe(4000);
  });

  it('never waits without limits, and refills while the applier is busy elsewhere', async () => {
    const clock = fakeClock();
    const none = new Throttle({}, clock);
    await none.take(1e9, 1e12);
    expect(none.limited).toBe(false);
    const throttle = new Throttle({ rowsPerSecond: 100 }, clock);
    await throttle.take(100, 0);
    clock.t += 2000; // two idle seconds refill at most one second of budget
    await throttle.take(100, 0);
    expect(clock.t).toBe(2000);
    await throttle.take(100, 0);
    expect(clock.t).toBe(3000);
  });
});
