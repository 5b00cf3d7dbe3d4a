import type { StreamLag } from '@pgferry/control';
import { StallWatch } from './stall-watch';
import { streamLag as lag } from '../test/stream-lag';

describe('StallWatch', () => {
  it('names the applier once its position has not moved for the limit while the capture is ahead', () => {
    const w = new StallWatch(10_000);
    let reported = 0;
    const at = (t: number, l: Partial<StreamLag> = {}) =>
      w.observe(lag({ reportedAt: new Date(reported++).toISOString(), ...l }), t).map((s) => s.process);
    expect(at(0)).toEqual([]);
    expect(at(9_000)).toEqual([]);
    expect(at(10_000)).toEqual(['applier']);
    // The restarted applier gets the whole limit again.
    expect(at(15_000)).toEqual([]);
    // Moving, or nothing waiting, is no stall.
    expect(at(21_000, { appliedRecords: 11 })).toEqual([]);
    expect(at(40_000, { appliedRecords: 11, appliedLsn: '0/3000' })).toEqual([]);
    expect(at(60_000, { appliedRecords: 11, appliedLsn: '0/3000' })).toEqual([]);
  });

  it('names the capture when it stopped reporting, and forgets time without readings after reset', () => {
    const w = new StallWatch(10_000);
    const still = lag({ appliedLsn: '0/3000' });
    expect(w.observe(still, 0)).toEqual([]);
    const stalls = w.observe(still, 10_000);
    expect(stalls.map((s) => s.process)).toEqual(['capture']);
    expect(stalls[0].reason).toMatch(/the capture has not reported or moved for 10 s/);
    w.reset();
    expect(w.observe(still, 100_000)).toEqual([]);
    expect(w.observe(still, 105_000)).toEqual([]);
  });
});
