import { RateLimiter, type Clock } from './rate-limiter';

/** A clock that only moves when a taker sleeps: the test sees exactly how long it waited. */
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

describe('RateLimiter', () => {
  it('holds every window to the rate plus one bucket, in small takes', async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter<'rows'>({ rows: 1000 }, { burstSeconds: 0.05, clock });
    const at: Array<{ t: number; n: number }> = [];
    let total = 0;
    for (let i = 0; i < 500; i++) {
      await limiter.take({ rows: 10 });
      total += 10;
      at.push({ t: clock.t, n: total });
    }
    // 5000 rows at 1000 rows/s: 5 s less the bucket it started with.
    expect(clock.t).toBeGreaterThanOrEqual(4950 - 10);
    let worst = 0;
    for (const a of at)
      for (const b of at) if (b.t - a.t >= 1000) worst = Math.max(worst, b.n - a.n - (b.t - a.t));
    // Over any window: the rate, plus the 50 ms bucket, plus one take.
    expect(worst).toBeLessThanOrEqual(50 + 10);
  });

  it('waits for the tighter measure, and lets a take larger than the bucket go into debt', async () => {
    const clock = fakeClock();
    const limiter = new RateLimiter<'rows' | 'bytes'>({ rows: 1e6, bytes: 1000 }, { clock });
    await limiter.take({ rows: 10, bytes: 1000 });
    await limiter.take({ rows: 10, bytes: 3000 }); // waits for a full bucket, then owes 2000
    await limiter.take({ rows: 10, bytes: 1000 });
    expect(clock.t).toBe(1000 + 3000);
    expect(limiter.waitedMs).toBe(4000);
    expect(limiter.taken.get('bytes')).toBe(5000);
  });

  it('applies a new limit to a taker already waiting, and lets everything through once cleared', async () => {
    let resolveSleep: (() => void) | null = null;
    let t = 0;
    const clock: Clock = {
      now: () => t,
      sleep: () => new Promise<void>((r) => (resolveSleep = r)),
    };
    const limiter = new RateLimiter<'rows'>({ rows: 10 }, { burstSeconds: 1, clock });
    await limiter.take({ rows: 10 });
    let done = false;
    const waiting = limiter.take({ rows: 10 }).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    expect(resolveSleep).not.toBeNull();
    limiter.setLimits({}); // cleared: the waiting take goes at once, its sleep not over
    await waiting;
    expect(done).toBe(true);
    expect(limiter.limited).toBe(false);
    t = 0;
    limiter.setLimits({ rows: 5 });
    expect(limiter.rate('rows')).toBe(5);
    await limiter.take({ rows: 5 });
    const slow = limiter.take({ rows: 5 });
    limiter.setLimits({ rows: 5000 }); // raised: the waiting take re-checks at once
    t = 2;
    await slow;
  });

  it('never waits without limits', async () => {
    const clock = fakeClock();
    const none = new RateLimiter<'rows'>({}, { clock });
    await none.take({ rows: 1e12 });
    expect(clock.t).toBe(0);
    expect(none.limited).toBe(false);
  });
});
