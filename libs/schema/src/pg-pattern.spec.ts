import { SpecError } from '@pgferry/core';
import { exactNamePattern, exactRelationPattern } from './pg-pattern';

/**
 * The name regexes psql/pg_dump build from a pattern: a port of fe_utils' processSQLNamePattern
 * (PostgreSQL 15) for one- and two-part patterns, enough to show that the quoted forms match
 * their name and nothing else.
 */
function patternRegexes(pattern: string): { schema?: RegExp; name: RegExp } {
  const parts: string[] = [];
  let cur = '';
  let inquotes = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '"') {
      if (inquotes && pattern[i + 1] === '"') {
        cur += '"';
        i++;
      } else inquotes = !inquotes;
    } else if (!inquotes && /[A-Z]/.test(ch)) cur += ch.toLowerCase();
    else if (!inquotes && ch === '*') cur += '.*';
    else if (!inquotes && ch === '?') cur += '.';
    else if (!inquotes && ch === '.') {
      parts.push(cur);
      cur = '';
    } else if (ch === '$') cur += '\\$';
    else cur += inquotes && '|*+?()[]{}.^$\\'.includes(ch) ? `\\${ch}` : ch;
  }
  parts.push(cur);
  const rx = (s: string) => new RegExp(`^(${s})$`, 'u');
  return parts.length === 1 ? { name: rx(parts[0]) } : { schema: rx(parts[0]), name: rx(parts[1]) };
}

const NAMES = [
  'plain',
  'MixedCase',
  'with space',
  'quo"te',
  '"',
  '""',
  'a.b',
  'x*',
  'x?',
  '$d',
  '(p)',
  '[c]',
  '{1,2}',
  'a|b',
  '^caret',
  'back\\slash',
  'plus+',
  'línea_表_😀',
  "o'hara",
  ' lead',
];
const DECOYS = [
  'plain2',
  'mixedcase',
  'MIXEDCASE',
  'aXb',
  'a',
  'b',
  'xyz',
  'x',
  'xy',
  'd',
  'p',
  'c',
  'caret',
  'plu',
];

describe('exactNamePattern', () => {
  it.each([
    ['plain', '"plain"'],
    ['MixedCase', '"MixedCase"'],
    ['quo"te', '"quo""te"'],
    ['a.b', '"a.b"'],
    ['x*', '"x*"'],
    ['línea_表', '"línea_表"'],
  ])('%s -> %s', (name, pattern) => {
    expect(exactNamePattern(name)).toBe(pattern);
  });

  it.each(NAMES)('the pattern for %j matches that name only', (name) => {
    const { name: rx } = patternRegexes(exactNamePattern(name));
    expect(rx.test(name)).toBe(true);
    const others = [...NAMES, ...DECOYS].filter((other) => other !== name);
    expect(others.filter((other) => rx.test(other))).toEqual([]);
  });

  it('refuses what cannot be a name as a spec error naming the fix', () => {
    expect(() => exactNamePattern('')).toThrow(SpecError);
    expect(() => exactNamePattern('')).toThrow(
      'task spec: a schema, table or extension name cannot be empty: give it a name in the task spec',
    );
    expect(() => exactNamePattern('a\0b')).toThrow(SpecError);
    expect(() => exactNamePattern('a\0b')).toThrow(
      'task spec: a name cannot contain a NUL character ("a\\u0000b"): correct the name in the task spec',
    );
  });
});

describe('exactRelationPattern', () => {
  it('quotes both parts, so dots inside names do not split them', () => {
    const pattern = exactRelationPattern('Sales.Dept', 'Order "Lines".v2');
    expect(pattern).toBe('"Sales.Dept"."Order ""Lines"".v2"');
    const { schema, name } = patternRegexes(pattern);
    expect(schema!.test('Sales.Dept')).toBe(true);
    expect(schema!.test('SalesXDept')).toBe(false);
    expect(name.test('Order "Lines".v2')).toBe(true);
    expect(name.test('Order "Lines"Xv2')).toBe(false);
  });

  it('a plain (unquoted) pattern would not be exact: the reason for quoting', () => {
    expect(patternRegexes('MixedCase').name.test('MixedCase')).toBe(false);
    expect(patternRegexes('x*').name.test('xyz')).toBe(true);
  });
});
