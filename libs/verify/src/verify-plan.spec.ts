import {
  boundsSql,
  chunkRanges,
  collationName,
  digestSql,
  HASH_PROBES,
  integerKeyBounds,
  keySpanSql,
  keyText,
  nextBoundSql,
  rangeCondition,
  relationSql,
} from './verify-plan';

describe('verify plan', () => {
  it('builds range conditions over quoted key columns with text parameters', () => {
    expect(rangeCondition(['a', 'My "k" ü'], ['1', 'x'], ['2', 'y'])).toEqual({
      sql: '("a", "My ""k"" ü") >= ($1, $2) AND ("a", "My ""k"" ü") < ($3, $4)',
      params: ['1', 'x', '2', 'y'],
    });
    expect(rangeCondition(['id'], null, ['10'])).toEqual({ sql: '("id") < ($1)', params: ['10'] });
    expect(rangeCondition(['id'], ['10'], null, 3)).toEqual({ sql: '("id") >= ($3)', params: ['10'] });
    expect(rangeCondition([], null, null)).toEqual({ sql: 'true', params: [] });
    expect(() => rangeCondition(['a', 'b'], ['1'], null)).toThrow(RangeError);
  });

  it('turns boundaries into half-open ranges covering the whole key space', () => {
    expect(chunkRanges([])).toEqual([{ from: null, to: null }]);
    expect(chunkRanges([['5'], ['9']])).toEqual([
      { from: null, to: ['5'] },
      { from: ['5'], to: ['9'] },
      { from: ['9'], to: null },
    ]);
  });

  it('reads plain tables with ONLY and partitioned tables through their root', () => {
    expect(relationSql('s', 'My "t"', false)).toBe('ONLY "s"."My ""t"""');
    expect(relationSql('s', 't', true)).toBe('"s"."t"');
  });

  it('takes every n-th key in one ordered pass and checksums named columns without sorting', () => {
    expect(boundsSql('ONLY "s"."t"', ['a', 'B'])).toBe(
      'SELECT "a"::text, "B"::text FROM (SELECT "a", "B", row_number() OVER (ORDER BY "a", "B") AS rn FROM ONLY "s"."t") k WHERE rn % $1 = 1 AND rn > 1 ORDER BY rn',
    );
    const sql = digestSql('ONLY "s"."t"', ['id', 'Note ü'], '("id") < ($1)');
    expect(sql).toBe(
      `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(convert_to(ROW("id", "Note ü")::text, 'UTF8')), 1, 15))::bit(60)::bigint), 0)::text AS s FROM ONLY "s"."t" WHERE ("id") < ($1)`,
    );
    expect(sql).not.toMatch(/ORDER BY/);
    expect(digestSql('"t"', ['a'], 'true', 'hash')).toBe(
      `SELECT count(*)::text AS n, coalesce(sum(pg_catalog.hashtextextended(coalesce(("a")::pg_catalog.text COLLATE pg_catalog."C", ''), 0::int8 # ("a" IS NULL)::int::int8)), 0)::text AS s FROM "t" WHERE true`,
    );
    // Each column's hash seeds the next; char(n) is hashed as printed, padding included.
    expect(digestSql('"t"', [{ name: 'a' }, { name: 'C ü', padded: true }], 'true', 'hash')).toBe(
      `SELECT count(*)::text AS n, coalesce(sum(pg_catalog.hashtextextended(coalesce(pg_catalog.textin(pg_catalog.bpcharout("C ü")), ''), pg_catalog.hashtextextended(coalesce(("a")::pg_catalog.text COLLATE pg_catalog."C", ''), 0::int8 # ("a" IS NULL)::int::int8) # ("C ü" IS NULL)::int::int8)), 0)::text AS s FROM "t" WHERE true`,
    );
    // Integers, uuids and timestamps by value with their types' hash functions, NULL flipping the seed.
    expect(
      digestSql(
        '"t"',
        [
          { name: 'id', typed: 'int' },
          { name: 'At', typed: 'timestamptz' },
        ],
        'true',
        'hash',
      ),
    ).toBe(
      `SELECT count(*)::text AS n, coalesce(sum(pg_catalog.timestamp_hash_extended(coalesce(("At")::pg_catalog.timestamp, '2000-01-01'::pg_catalog.timestamp), pg_catalog.hashint8extended(coalesce(("id")::pg_catalog.int8, 0::pg_catalog.int8), 0::int8 # ("id" IS NULL)::int::int8) # ("At" IS NULL)::int::int8)), 0)::text AS s FROM "t" WHERE true`,
    );
    // char(n) by its bytes without the padding, under collation "C".
    expect(digestSql('"t"', [{ name: 'c', padded: true, typed: 'bpchar' }], 'true', 'hash')).toBe(
      `SELECT count(*)::text AS n, coalesce(sum(pg_catalog.hashbpcharextended(coalesce(("c")::pg_catalog.bpchar, ''::pg_catalog.bpchar) COLLATE pg_catalog."C", 0::int8 # ("c" IS NULL)::int::int8)), 0)::text AS s FROM "t" WHERE true`,
    );
    expect(() => digestSql('t', [], 'true')).toThrow(RangeError);
  });

  it('walks the key to the next boundary: from the start, then after the last boundary', () => {
    expect(nextBoundSql('ONLY "s"."t"', ['a', 'B'], null, 1000)).toEqual({
      sql: 'SELECT k."a"::text, k."B"::text FROM (SELECT * FROM ONLY "s"."t") k ORDER BY k."a", k."B" OFFSET $1 LIMIT 1',
      params: ['1000'],
    });
    expect(nextBoundSql('ONLY "s"."t"', ['a', 'B'], ['1', 'x'], 999)).toEqual({
      sql: 'SELECT k."a"::text, k."B"::text FROM (SELECT * FROM ONLY "s"."t") k WHERE (k."a", k."B") > ($1, $2) ORDER BY k."a", k."B" OFFSET $3 LIMIT 1',
      params: ['1', 'x', '999'],
    });
    expect(() => nextBoundSql('t', ['a'], ['1', '2'], 1)).toThrow(RangeError);
  });

  it('splits a dense integer key every chunkRows values, and leaves sparse or unestimated keys to the walk', () => {
    expect(keySpanSql('ONLY "s"."t"', 'Id')).toBe(
      'SELECT min("Id")::text AS lo, max("Id")::text AS hi, (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = $1::pg_catalog.regclass) AS estimate FROM ONLY "s"."t"',
    );
    // 1..5000 by 1000: the walk's boundaries (the first key of each later chunk).
    expect(integerKeyBounds('1', '5000', 5000, 1000)).toEqual(['1001', '2001', '3001', '4001']);
    expect(integerKeyBounds('1', '5001', 4990, 1000)).toEqual(['1001', '2001', '3001', '4001', '5001']);
    expect(integerKeyBounds('-7', '-7', 1, 1000)).toEqual([]);
    // Beyond 2^53, exactly.
    expect(integerKeyBounds('9223372036854775000', '9223372036854775807', 808, 500)).toEqual([
      '9223372036854775500',
    ]);
    // A stale estimate that is too high changes nothing: no range holds more than chunkRows keys.
    expect(integerKeyBounds('1', '3000', 1e6, 1000)).toEqual(['1001', '2001']);
    expect(integerKeyBounds('1', '10001', 5000, 1000)).toBeNull();
    expect(integerKeyBounds('1', '5000', -1, 1000)).toBeNull();
    expect(integerKeyBounds('1', '5000', 5000, 0)).toBeNull();
  });

  it('probes the hash at every tail length, with multi-byte characters', () => {
    expect(HASH_PROBES.map((p) => Buffer.byteLength(p))).toEqual(
      expect.arrayContaining(Array.from({ length: 25 }, (_, n) => n)),
    );
    expect(HASH_PROBES.some((p) => Buffer.byteLength(p) > p.length)).toBe(true);
  });

  it('prints key values as a row literal', () => {
    expect(keyText(['1', "it's"])).toBe(`('1', 'it''s')`);
  });

  it('names sort orders so that equal ones compare equal', () => {
    const c = (provider: string | null, locale: string | null, deterministic = true) => ({
      provider,
      locale,
      deterministic,
    });
    expect(collationName(null)).toBeNull();
    for (const same of [
      c('c', 'C'),
      c('c', 'POSIX'),
      c('c', 'C.UTF-8'),
      c('c', 'C.utf8'),
      c('b', 'C.UTF-8'),
      c(null, 'C'),
    ])
      expect(collationName(same)).toBe('C');
    expect(collationName(c('c', 'en_US.UTF-8'))).toBe(collationName(c('c', 'en_US.utf8')));
    expect(collationName(c('c', 'en_US.UTF-8'))).toBe('libc en_US.utf8');
    expect(collationName(c('i', 'und'))).toBe('icu und');
    expect(collationName(c('i', 'und', false))).toBe('icu und (nondeterministic)');
  });
});
