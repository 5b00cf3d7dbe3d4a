import { blocking, makeReport, type PrecheckItem } from './precheck-report';

const item = (id: string, level: PrecheckItem['level']): PrecheckItem => ({
  id,
  name: id.split(':')[0],
  level,
  message: `${id} is ${level}`,
});

describe('makeReport', () => {
  it('is ok when no item failed, whatever the alerts', () => {
    expect(makeReport([item('a', 'passed'), item('b', 'alert')]).ok).toBe(true);
    expect(makeReport([item('a', 'passed'), item('b', 'failed')]).ok).toBe(false);
    expect(makeReport([]).ok).toBe(true);
  });

  it('makes repeated ids unique in report order, leaving the first as is', () => {
    const ids = makeReport([
      item('x', 'failed'),
      item('y', 'passed'),
      item('x', 'failed'),
      item('x', 'alert'),
    ]).items.map((i) => i.id);
    expect(ids).toEqual(['x', 'y', 'x #2', 'x #3']);
  });
});

describe('blocking', () => {
  const keys = 'keys:"public"."history"';
  const lo = 'large-objects';
  const report = makeReport([item('versions', 'passed'), item(keys, 'alert'), item(lo, 'alert')]);

  it('blocks on every unacknowledged alert and lets the task start once all are acknowledged', () => {
    expect(blocking(report, [])).toEqual({
      mayStart: false,
      blockers: [report.items[1], report.items[2]],
      unmatched: [],
    });
    expect(blocking(report, [keys]).blockers.map((i) => i.id)).toEqual([lo]);
    expect(blocking(report, [lo, keys])).toEqual({ mayStart: true, blockers: [], unmatched: [] });
  });

  it('always blocks on failed items, even when their id is acknowledged', () => {
    const failed = makeReport([item('connectivity:source', 'failed'), item(lo, 'alert')]);
    const verdict = blocking(failed, ['connectivity:source', lo]);
    expect(verdict.mayStart).toBe(false);
    expect(verdict.blockers.map((i) => i.id)).toEqual(['connectivity:source']);
    expect(verdict.unmatched).toEqual(['connectivity:source']);
  });

  it('matches ids exactly and reports acknowledgements that name no alert', () => {
    const verdict = blocking(report, ['keys:public.history', keys.toUpperCase(), keys, lo, 'versions']);
    expect(verdict.mayStart).toBe(true);
    expect(verdict.unmatched).toEqual(['keys:public.history', keys.toUpperCase(), 'versions']);
    expect(blocking(report, ['keys:public.history', lo]).blockers.map((i) => i.id)).toEqual([keys]);
  });

  it('lets a report of passed items start with no acknowledgements', () => {
    expect(blocking(makeReport([item('a', 'passed')]), [])).toEqual({
      mayStart: true,
      blockers: [],
      unmatched: [],
    });
  });
});
