import { RestartTracker } from './restart-policy';

describe('RestartTracker', () => {
  it('backs off exponentially up to the cap and gives up when the window is spent', () => {
    let now = 0;
    const tracker = new RestartTracker(
      { windowMs: 10_000, initialDelayMs: 1000, maxDelayMs: 4000, stableMs: 60_000 },
      () => now,
    );
    const delays: Array<number | null> = [];
    for (let i = 0; i < 5; i++) {
      const d = tracker.onCrash(100);
      delays.push(d);
      now += (d ?? 0) + 100;
    }
    // 0 -> +1000, 1100 -> +2000, 3200 -> +4000, 7300 -> +4000 would start at 11300 > 10000.
    expect(delays).toEqual([1000, 2000, 4000, null, null]);
  });

  it('starts a new streak after the child stayed up for stableMs', () => {
    let now = 0;
    const tracker = new RestartTracker({ windowMs: 5000, initialDelayMs: 1000, stableMs: 30_000 }, () => now);
    expect(tracker.onCrash(10)).toBe(1000);
    now = 2000;
    expect(tracker.onCrash(10)).toBe(2000);
    now = 100_000;
    expect(tracker.onCrash(90_000)).toBe(1000);
    expect(tracker.attempts).toBe(1);
  });

  it('restarts a child that lost a server within connectionWindowMs, any other exit within windowMs', () => {
    let now = 0;
    const policy = { windowMs: 10_000, connectionWindowMs: 60_000, initialDelayMs: 1000, maxDelayMs: 4000 };
    const lost = new RestartTracker(policy, () => now);
    const crashed = new RestartTracker(policy, () => now);
    let lostStarts = 0;
    let crashedStarts = 0;
    for (let i = 0; i < 20; i++) {
      const d = lost.onCrash(100, true);
      if (d === null) break;
      lostStarts++;
      now += d + 100;
    }
    now = 0;
    for (let i = 0; i < 20; i++) {
      const d = crashed.onCrash(100, false);
      if (d === null) break;
      crashedStarts++;
      now += d + 100;
    }
    // Delays 1000, 2000, 4000, then 4000 (each run 100 ms): 60 s hold 15 restarts, 10 s three.
    expect(crashedStarts).toBe(3);
    expect(lostStarts).toBe(15);
  });
});
