import { SpecError } from './errors';
import { parseTaskSpec } from './spec';
import { changeThrottle, parseThrottleChange } from './throttle-spec';

const minimal = {
  name: 't',
  source: { url: 'postgres://app@db1:5432/shop' },
  destination: { url: 'postgres://app@db2:5432/shop' },
};

function issues(throttle: unknown): string[] {
  try {
    parseTaskSpec({ ...minimal, options: { throttle } });
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).issues;
  }
  throw new Error('expected the spec to be rejected');
}

describe('options.throttle', () => {
  it('reads the full and incremental limits', () => {
    const spec = parseTaskSpec({
      ...minimal,
      options: {
        throttle: {
          full: { sourceQueriesPerSecond: 50, rowsPerSecond: 50000, bytesPerSecond: 20000000 },
          incremental: { rowsPerSecond: 20000 },
        },
      },
    });
    expect(spec.options.throttle).toEqual({
      full: { sourceQueriesPerSecond: 50, rowsPerSecond: 50000, bytesPerSecond: 20000000 },
      incremental: { rowsPerSecond: 20000 },
    });
  });

  it('refuses the flat form, showing the new one with the same values', () => {
    expect(issues({ rowsPerSecond: 1000 })).toEqual([
      "options.throttle.rowsPerSecond: the flat form is gone: write options.throttle: { incremental: { rowsPerSecond: 1000 } } for the change appliers' limit (what it meant before), and/or options.throttle.full: { sourceQueriesPerSecond, rowsPerSecond, bytesPerSecond } for the full load (docs/throttling.md)",
    ]);
  });

  it('names unknown fields and bad values', () => {
    expect(issues({ full: { queriesPerSecond: 5 } })).toEqual([
      'options.throttle.full: unknown field "queriesPerSecond"',
    ]);
    expect(issues({ incremental: { rowsPerSecond: 0 } })[0]).toMatch(
      /^options\.throttle\.incremental\.rowsPerSecond: Number must be greater than 0/,
    );
    expect(issues({ fast: true })[0]).toMatch(/^options\.throttle: unknown field "fast"/);
  });
});

describe('throttle changes', () => {
  it('sets, clears and keeps each limit', () => {
    const current = {
      full: { rowsPerSecond: 20000, bytesPerSecond: 1e6 },
      incremental: { rowsPerSecond: 5 },
    };
    const change = parseThrottleChange({ full: { rowsPerSecond: 10000, bytesPerSecond: null } });
    expect(changeThrottle(current, change)).toEqual({
      full: { rowsPerSecond: 10000 },
      incremental: { rowsPerSecond: 5 },
    });
  });

  it('refuses a bad change naming the field', () => {
    expect(() => parseThrottleChange({ full: { rowsPerSecond: -1 } })).toThrow(
      /^invalid throttle change: full\.rowsPerSecond: Number must be greater than 0; give \{ full: /,
    );
    expect(() => parseThrottleChange({ incremental: { queries: 1 } })).toThrow(
      /incremental: unknown field queries/,
    );
  });
});
