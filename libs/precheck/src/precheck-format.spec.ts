import { formatBytes, formatCount, formatPrecheckReport, listNames, plural } from './precheck-format';
import { makeReport } from './precheck-report';

describe('formatPrecheckReport', () => {
  it('aligns names, marks levels, and indents fixes under their message', () => {
    const text = formatPrecheckReport(
      makeReport([
        {
          id: 'versions',
          name: 'versions',
          level: 'passed',
          message: 'source PostgreSQL 15, destination PostgreSQL 16',
        },
        {
          id: 'privileges:source:select:"s"."t"',
          name: 'source privileges',
          level: 'failed',
          message: 'source user "app" lacks SELECT on table "s"."t": the snapshot reads its rows; grant it',
          fix: 'GRANT SELECT ON TABLE "s"."t" TO "app";',
        },
        {
          id: 'slot:pgferry_a',
          name: 'replication slot',
          level: 'alert',
          message: 'replication slot pgferry_a already exists',
          fix: 'acknowledge this alert to resume; to start over instead:\nSELECT 1; -- on the source',
        },
      ]),
    );
    expect(text.split('\n')).toEqual([
      '  passed  versions           source PostgreSQL 15, destination PostgreSQL 16',
      '  FAILED  source privileges  source user "app" lacks SELECT on table "s"."t": the snapshot reads its rows; grant it',
      '                             fix: GRANT SELECT ON TABLE "s"."t" TO "app";',
      '  alert   replication slot   replication slot pgferry_a already exists',
      '                             fix: acknowledge this alert to resume; to start over instead:',
      '                                  SELECT 1; -- on the source',
    ]);
  });

  it('leaves out a fix the message already holds word for word, with or without its final semicolon', () => {
    const text = formatPrecheckReport(
      makeReport([
        {
          id: 'keys:"s"."t"',
          name: 'primary key',
          level: 'alert',
          message: 'add a primary key, or run ALTER TABLE "s"."t" REPLICA IDENTITY FULL',
          fix: 'ALTER TABLE "s"."t" REPLICA IDENTITY FULL;',
        },
      ]),
    );
    expect(text).toBe(
      '  alert   primary key  add a primary key, or run ALTER TABLE "s"."t" REPLICA IDENTITY FULL',
    );
  });

  it('prints nothing for an empty report', () => {
    expect(formatPrecheckReport(makeReport([]))).toBe('');
  });
});

describe('number and name formatting', () => {
  it.each([
    [0, '0 bytes'],
    [10239, '10239 bytes'],
    [10240, '10 kB'],
    [57344, '56 kB'],
    [5 * 1024 ** 3, '5120 MB'],
    [20 * 1024 ** 3, '20 GB'],
    [3 * 1024 ** 6, '3072 PB'],
  ])('formatBytes(%d) = %s', (bytes, text) => expect(formatBytes(bytes)).toBe(text));

  it('counts with thousands separators and plurals', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(999)).toBe('999');
    expect(plural(1, 'table')).toBe('1 table');
    expect(plural(2500, 'table')).toBe('2,500 tables');
    expect(plural(0, 'index', 'indexes')).toBe('0 indexes');
  });

  it('lists at most max names', () => {
    expect(listNames(['a', 'b'])).toBe('a, b');
    expect(listNames(['a', 'b', 'c', 'd'], 2)).toBe('a, b and 2 more');
  });
});
