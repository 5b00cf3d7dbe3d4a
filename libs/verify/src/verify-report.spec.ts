import { DataError } from '@pgferry/core';
import {
  assertVerified,
  describeRange,
  formatVerifyReport,
  verifyError,
  type VerifyReport,
} from './verify-report';

const equal = {
  table: '"s"."a"',
  target: '"s"."a"',
  sourceRows: 10,
  destinationRows: 10,
  chunks: 2,
  key: ['id'],
  mismatches: [],
};
const different = {
  table: '"s"."My ""odd"" table ü"',
  target: '"t"."b"',
  sourceRows: 300,
  destinationRows: 299,
  chunks: 3,
  key: ['k', 'id'],
  mismatches: [
    { from: null, to: "('a', '100')", sourceRows: 100, destinationRows: 100 },
    { from: "('b', '7')", to: null, sourceRows: 100, destinationRows: 99 },
  ],
};
const missing = {
  ...equal,
  table: '"s"."m"',
  target: '"s"."m"',
  problem: '"s"."m" does not exist on the destination',
};
const keyless = {
  ...equal,
  table: '"s"."log"',
  target: '"s"."log"',
  chunks: 1,
  key: [],
  notes: ['generated columns not compared: "g"'],
};

describe('verify report', () => {
  it('has one line per table, then its differing ranges and notes', () => {
    const report: VerifyReport = {
      ok: false,
      tables: [equal, different, missing, keyless],
      atSnapshot: true,
    };
    expect(formatVerifyReport(report).split('\n')).toEqual([
      '  equal     "s"."a": 10 rows on the source, 10 on the destination, 2 ranges of "id"',
      '  DIFFERENT "s"."My ""odd"" table ü" -> "t"."b": 300 rows on the source, 299 on the destination, 3 ranges of "k", "id"',
      `            ("k", "id") before ('a', '100'): 100 rows on the source, 100 on the destination, same count but different contents`,
      `            ("k", "id") from ('b', '7') to the end: 100 rows on the source, 99 on the destination`,
      '  MISSING   "s"."m": "s"."m" does not exist on the destination',
      '  equal     "s"."log": 10 rows on the source, 10 on the destination, 1 whole-table comparison (no key)',
      '            note: generated columns not compared: "g"',
    ]);
  });

  it('says why a keyed table was compared whole', () => {
    const whole = {
      ...equal,
      chunks: 1,
      key: [],
      wholeTableReason: 'key column "c" sorts by C on the source',
    };
    expect(formatVerifyReport({ ok: true, tables: [whole] })).toBe(
      '  equal     "s"."a": 10 rows on the source, 10 on the destination, 1 whole-table comparison (key column "c" sorts by C on the source)',
    );
  });

  it('describes a range with both ends, one end, or none', () => {
    const m = { sourceRows: 1, destinationRows: 1 };
    expect(describeRange({ key: ['id'] }, { ...m, from: "('1')", to: "('5')" })).toBe(
      `("id") from ('1') to before ('5')`,
    );
    expect(describeRange({ key: ['id'] }, { ...m, from: null, to: null })).toBe('the whole table');
    expect(describeRange({ key: [] }, { ...m, from: "('1')", to: null })).toBe('the whole table');
  });

  it('fails with a DataError naming only the differing tables and ranges', () => {
    const report: VerifyReport = { ok: false, tables: [equal, different, missing], atSnapshot: true };
    const err = verifyError(report)!;
    expect(err).toBeInstanceOf(DataError);
    expect(err.retriable).toBe(false);
    expect(err.code).toBe('VERIFY_MISMATCH');
    expect(err.message.split('\n')).toEqual([
      'verify found 2 tables that differ between source and destination:',
      '  DIFFERENT "s"."My ""odd"" table ü" -> "t"."b": 300 rows on the source, 299 on the destination, 3 ranges of "k", "id"',
      `            ("k", "id") before ('a', '100'): 100 rows on the source, 100 on the destination, same count but different contents`,
      `            ("k", "id") from ('b', '7') to the end: 100 rows on the source, 99 on the destination`,
      '  MISSING   "s"."m": "s"."m" does not exist on the destination',
    ]);
    expect(() => assertVerified(report)).toThrow(err.message);
  });

  it('warns when the source was not read at the load snapshot, and summarises a pass', () => {
    expect(verifyError({ ok: false, tables: [different] })!.message).toMatch(/compared as it is now/);
    expect(verifyError({ ok: true, tables: [equal] })).toBeNull();
    expect(assertVerified({ ok: true, tables: [equal, equal] })).toBe(
      '2 tables equal (20 rows compared by count and checksum)',
    );
  });
});
