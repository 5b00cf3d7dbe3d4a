import { rowsAsArrays, textArrayLiteral } from './pg-apply-session';

describe('textArrayLiteral', () => {
  it('quotes every element, escapes quotes and backslashes, and writes NULL only for null', () => {
    expect(textArrayLiteral(['a', null, 'NULL', 'x"y\\z', '', ' {a,b} ', 'Ü №'])).toBe(
      '{"a",NULL,"NULL","x\\"y\\\\z",""," {a,b} ","Ü №"}',
    );
    expect(textArrayLiteral([])).toBe('{}');
    // A row shorter than the run's columns: its missing value is NULL, never the text "undefined".
    expect(textArrayLiteral(['x', undefined as unknown as null])).toBe('{"x",NULL}');
    expect(textArrayLiteral(['\\\\', '""'])).toBe('{"\\\\\\\\","\\"\\""}');
  });
});

describe('rowsAsArrays', () => {
  it('gives one literal per column, in the order picked', () => {
    const rows = [
      ['1', 'a', null],
      ['2', 'b"', 'c'],
    ];
    expect(rowsAsArrays(rows, 2, [2, 0])).toEqual({
      params: ['{NULL,"c"}', '{"1","2"}'],
      from: 'unnest($1::text[], $2::text[]) AS s(c0, c1)',
    });
    expect(rowsAsArrays(rows, 3).params).toEqual(['{"1","2"}', '{"a","b\\""}', '{NULL,"c"}']);
  });
});
