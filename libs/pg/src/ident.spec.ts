import { SpecError } from '@pgferry/core';
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

  it('refuses empty names and NUL as a spec error naming the fix, and a non-string as a bug', () => {
    expect(() => quoteIdent('')).toThrow(SpecError);
    expect(() => quoteIdent('')).toThrow(
      'task spec: an identifier cannot be empty: give the schema, table or role a name in the task spec',
    );
    expect(() => quoteIdent('a\0b')).toThrow(SpecError);
    expect(() => quoteIdent('a\0b')).toThrow(
      'task spec: an identifier cannot contain a NUL character ("a\\u0000b"): correct the name in the task spec',
    );
    expect(() => quoteIdent(undefined as unknown as string)).toThrow(TypeError);
  });

  it('qualifies', () => {
    expect(quoteQualified('My Schema', 't"1')).toBe('"My Schema"."t""1"');
  });
});

describe('quoteLiteral', () => {
  it('doubles single quotes and leaves backslashes alone (standard_conforming_strings)', () => {
    expect(quoteLiteral("it's \\n")).toBe("'it''s \\n'");
  });

  it('refuses NUL as a spec error without quoting the value', () => {
    expect(() => quoteLiteral('secret\0')).toThrow(SpecError);
    expect(() => quoteLiteral('secret\0')).toThrow(
      'task spec: a string literal cannot contain a NUL character: correct the name or setting in the task spec',
    );
  });
});
