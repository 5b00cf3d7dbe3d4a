import { throttleChangeFromFlags } from './throttle-command';
import { formatStageThrottle } from './throttle-format';

describe('pgferry throttle flags', () => {
  it('sets, clears and keeps limits', () => {
    expect(throttleChangeFromFlags({ fullRows: '10000', incrementalBytes: 'off' })).toEqual({
      full: { rowsPerSecond: 10000 },
      incremental: { bytesPerSecond: null },
    });
    expect(throttleChangeFromFlags({ clear: true })).toEqual({
      full: { sourceQueriesPerSecond: null, rowsPerSecond: null, bytesPerSecond: null },
      incremental: { rowsPerSecond: null, bytesPerSecond: null },
    });
  });

  it('refuses a value that is not a rate, naming the flag', () => {
    expect(() => throttleChangeFromFlags({ fullQueries: 'fast' })).toThrow(
      '--full-queries "fast": give a number above 0 (per second), or off to clear the limit',
    );
    expect(() => throttleChangeFromFlags({ incrementalRows: '0' })).toThrow(/^--incremental-rows "0"/);
  });
});

describe('the status line of a throttled stage', () => {
  it('shows the limits, the rates now and whether it waited', () => {
    expect(
      formatStageThrottle(
        'full',
        { rowsPerSecond: 20000, bytesPerSecond: 5e6 },
        {
          rates: { rowsPerSecond: 19850, bytesPerSecond: 4.2e6, sourceQueriesPerSecond: 0.5 },
          throttled: true,
        },
      ),
    ).toBe('throttle full 20.0k rows/s, 5.00MB/s, now 0.5 queries/s, 19.9k rows/s, 4.20MB/s  THROTTLED');
    expect(formatStageThrottle('incremental', {}, { rates: { rowsPerSecond: 10 }, throttled: false })).toBe(
      '',
    );
  });
});
