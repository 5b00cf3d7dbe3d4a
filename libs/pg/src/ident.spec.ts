import { quoteIdent, quoteLiteral, quoteQualified } from './ident';

describe('quoteIdent', () => {
  it.each([
    ['plain', '"plain"'],
    ['MixedCase', '"MixedCase"'],
    ['with space', '"with space"'],
    ['quo"te', '"quo""te"'],
    ['"', '""""'],
    ['a.b', '"a.b"'],
    ['línea_ünïcode_表', '"línea_ünïcode_表"'],
    ["Robert'); DROP TABLE x;--", `"Robert'); DROP TABLE x;--"`],
  ])('%s', (name, quoted) => {
    expect(quoteIdent(name)).toBe(quoted);
  });

  it('rejects empty names and NUL', () => {
    expect(() => quoteIdent('')).toThrow(RangeError);
    expect(() => quoteIdent('a\0b')).toThrow('an identifier cannot contain a NUL character');
  });

  it('qualifies', () => {
    expect(quoteQualified('My Schema', 't"1')).toBe('"My Schema"."t""1"');
  });
});

describe('quoteLiteral', () => {
  it('doubles single quotes and leaves backslashes alone (standard_conforming_strings)', () => {
    expect(quoteLiteral("it's \\n")).toBe("'it''s \\n'");
  });
});
