import { quoteIdent, quoteQualified } from '@pgferry/pg';

/**
 * The SQL of the verify phase, pure: no I/O here, so every statement is unit-tested as text.
 * Names go through quoteIdent; values are bind parameters.
 */

/**
 * Session settings under which both servers print row text for the checksum. Every setting that
 * changes a built-in type's text output is pinned: dates and intervals, the time zone of
 * timestamptz, float digits (3: exact round trip), bytea, money (lc_monetary) and reg* types
 * (search_path). Applied with set_config so that the caller's values can be put back.
 */
export const VERIFY_SESSION_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['DateStyle', 'ISO, YMD'],
  ['TimeZone', 'UTC'],
  ['IntervalStyle', 'postgres'],
  ['extra_float_digits', '3'],
  ['bytea_output', 'hex'],
  ['lc_monetary', 'C'],
  ['search_path', 'pg_catalog'],
];

/** A half-open key range [from, to); null is the table's start or end. Values are key text. */
export interface KeyRange {
  from: string[] | null;
  to: string[] | null;
}

/** The ranges between consecutive boundaries; always covers the whole key space. Pure. */
export function chunkRanges(bounds: readonly string[][]): KeyRange[] {
  const ranges: KeyRange[] = [];
  for (let i = 0; i <= bounds.length; i++)
    ranges.push({ from: i ? bounds[i - 1] : null, to: bounds[i] ?? null });
  return ranges;
}

/**
 * The table as a FROM item. Plain tables are read with ONLY, so a table with inheritance children
 * is compared on its own rows (the children are selected as tables of their own); a partitioned
 * table is read through its root, which holds no rows itself.
 */
export function relationSql(schema: string, table: string, partitioned: boolean): string {
  return `${partitioned ? '' : 'ONLY '}${quoteQualified(schema, table)}`;
}

/**
 * The chunk boundaries: every chunkRows-th key (as text, in key order) after the first. One
 * ordered pass over the key (an index scan of the primary key): row_number needs no count first,
 * unlike ntile, and, unlike sampling percentiles, gives exact, repeatable chunk sizes. $1 is
 * chunkRows. The verifier walks the key with nextBoundSql instead (the same boundaries, without
 * the window function); this one stays as the definition those boundaries are tested against.
 */
export function boundsSql(relation: string, key: readonly string[]): string {
  const cols = key.map(quoteIdent).join(', ');
  const asText = key.map((k) => `${quoteIdent(k)}::text`).join(', ');
  return `SELECT ${asText} FROM (SELECT ${cols}, row_number() OVER (ORDER BY ${cols}) AS rn FROM ${relation}) k WHERE rn % $1 = 1 AND rn > 1 ORDER BY rn`;
}

/**
 * The next chunk boundary after `after` (a boundary's key text; null: from the table's start):
 * the key `skip` rows further in key order, or no row at the end. Walked from the start with
 * skip = chunkRows, then chunkRows - 1 after each boundary, it gives boundsSql's boundaries, one
 * at a time, each an index scan over one chunk of the key: about half the cost of the window
 * function, and the first range is known after one chunk. The values are untyped text parameters
 * as in rangeCondition; the last parameter is `skip`.
 */
export function nextBoundSql(
  relation: string,
  key: readonly string[],
  after: readonly string[] | null,
  skip: number,
): { sql: string; params: string[] } {
  // Bounds are the key texts this module's own queries returned: only a pgferry bug breaks this.
  if (after && after.length !== key.length) throw new RangeError(`a key bound needs ${key.length} values`);
  const cols = key.map((k) => `k.${quoteIdent(k)}`).join(', ');
  const asText = key.map((k) => `k.${quoteIdent(k)}::text`).join(', ');
  const params = after ? [...after] : [];
  const where = after ? ` WHERE (${cols}) > (${after.map((_, i) => `$${i + 1}`).join(', ')})` : '';
  params.push(String(skip));
  return {
    // Wrapped: `relation` may be a subquery with its own alias (the source's filtered view).
    sql: `SELECT ${asText} FROM (SELECT * FROM ${relation}) k${where} ORDER BY ${cols} OFFSET $${params.length} LIMIT 1`,
    params,
  };
}

/**
 * The smallest and largest key of a table keyed by one integer column (as text; NULL when the
 * table is empty), and the row estimate of its statistics (reltuples: -1 when never analyzed).
 * min and max are one index probe each, against a walk of the whole key. $1 is the table's
 * regclass text.
 */
export function keySpanSql(relation: string, key: string): string {
  const k = quoteIdent(key);
  return `SELECT min(${k})::text AS lo, max(${k})::text AS hi, (SELECT c.reltuples FROM pg_catalog.pg_class c WHERE c.oid = $1::pg_catalog.regclass) AS estimate FROM ${relation}`;
}

/**
 * Boundaries every `chunkRows` key values from `lo`, for a table keyed by one integer column
 * whose keys span lo..hi: ranges of chunkRows values hold at most chunkRows rows (keys are
 * unique), and where the keys are dense, as a serial key's are, these are the boundaries the
 * walk (nextBoundSql) would find, without reading the key. null when the keys are sparse (their
 * span is more than twice the row estimate) or the estimate is unknown (negative): the walk
 * then gives ranges of even row counts. The first and last ranges stay open (chunkRanges), so
 * rows outside lo..hi on the destination are still counted. Pure.
 */
export function integerKeyBounds(
  lo: string,
  hi: string,
  estimate: number,
  chunkRows: number,
): string[] | null {
  if (!(estimate >= 0) || !Number.isSafeInteger(chunkRows) || chunkRows < 1) return null;
  const from = BigInt(lo);
  const span = BigInt(hi) - from + 1n;
  if (span > 2n * BigInt(Math.ceil(Math.max(estimate, 1)))) return null;
  const step = BigInt(chunkRows);
  const bounds: string[] = [];
  for (let b = from + step; b <= from + span - 1n; b += step) bounds.push(b.toString());
  return bounds;
}

/**
 * The condition of a key range: (k1, k2) >= (from) AND (k1, k2) < (to). The values are untyped
 * text parameters: a row comparison resolves each one to its key column's type on that server,
 * which is the cast to the column type without naming the type (a type in a renamed schema is
 * spelled differently on the destination). Parameter numbers start after `firstParam - 1`. Pure.
 */
export function rangeCondition(
  key: readonly string[],
  from: readonly string[] | null,
  to: readonly string[] | null,
  firstParam = 1,
): { sql: string; params: string[] } {
  // Bounds are the key texts nextBoundSql's queries returned: only a pgferry bug breaks this.
  if ((from && from.length !== key.length) || (to && to.length !== key.length))
    throw new RangeError(`a key range needs ${key.length} values per bound`);
  const params: string[] = [];
  const tuple = `(${key.map(quoteIdent).join(', ')})`;
  const values = (v: readonly string[]) =>
    `(${v.map((x) => `$${firstParam - 1 + params.push(x)}`).join(', ')})`;
  const parts: string[] = [];
  if (from) parts.push(`${tuple} >= ${values(from)}`);
  if (to) parts.push(`${tuple} < ${values(to)}`);
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

/**
 * How each row is hashed. 'hash': hashtextextended (64 bits) of each column's text in turn, each
 * seeded with the hash so far (see rowHashSql): several times faster than md5 of the row text;
 * its value depends on the server's byte order and encoding, so it is used only when both
 * servers give the same values for HASH_PROBES. 'md5': the first 60 bits of md5 of the row's
 * text converted to UTF-8: the same on every platform, version and encoding.
 */
export type ChecksumKind = 'hash' | 'md5';

/**
 * Probe strings whose hashes both servers must agree on before 'hash' is used: every tail length
 * of the hash's 12-byte blocks (0 to 24 bytes of ASCII), and multi-byte UTF-8.
 */
export const HASH_PROBES: readonly string[] = [
  ...Array.from({ length: 25 }, (_, n) => 'pgferry-verify-probe-0123'.slice(0, n)),
  'é',
  'Zürich 中文',
  'emoji 😀 and more text',
];

/**
 * The probe query: the hashes of $1 (HASH_PROBES) as one text, with seed 0 and with a seed that
 * has high, low and sign bits set (row hashes chain their columns through the seed).
 */
export const HASH_PROBE_SQL =
  "SELECT string_agg(hashtextextended(p, 0)::text || '/' || hashtextextended(p, (i * 1442695040888963) # (i % 2 << 63))::text, ',' ORDER BY i) AS h FROM unnest($1::text[]) WITH ORDINALITY AS u(p, i)";

/**
 * Types whose values the 'hash' row hash takes by value, with the type's own extended hash
 * function, instead of printing them: their text is exactly their value (two values print alike
 * only when they are equal), so the comparison is the same, and printing is most of the cost of
 * hashing a row of them (1M pgbench rows: 0.40 against 0.24 cpu-s). 'int': smallint, integer and
 * bigint, all hashed as bigint, so an integer column that is a bigint on the other side compares
 * by value as its text did; 'timestamptz' is hashed as its UTC timestamp (TimeZone is pinned);
 * 'bpchar': char(n) by its bytes without the padding (hashbpcharextended under collation "C"),
 * only when both sides have the same n, where two values print alike exactly when they are
 * equal (2M char(84) fillers: 0.48 against 0.36 cpu-s per side).
 */
export type TypedHash = 'int' | 'uuid' | 'timestamp' | 'timestamptz' | 'bpchar';

/**
 * A column to hash: its name, whether its type prints blank-padded (char(n), bpcharout), and the
 * typed hash it may be taken by (only when both sides have the same; see TypedHash).
 */
export interface DigestColumn {
  name: string;
  padded?: boolean;
  typed?: TypedHash | null;
}

/**
 * Per TypedHash: the hash function, the value cast to its argument type, the value NULL stands
 * for, and whether the value is hashed under collation "C" (by its bytes).
 */
const TYPED_HASH: Record<TypedHash, { fn: string; cast: string; zero: string; bytes?: boolean }> = {
  int: { fn: 'pg_catalog.hashint8extended', cast: 'pg_catalog.int8', zero: '0' },
  uuid: {
    fn: 'pg_catalog.uuid_hash_extended',
    cast: 'pg_catalog.uuid',
    zero: `'00000000-0000-0000-0000-000000000000'`,
  },
  timestamp: { fn: 'pg_catalog.timestamp_hash_extended', cast: 'pg_catalog.timestamp', zero: `'2000-01-01'` },
  timestamptz: {
    fn: 'pg_catalog.timestamp_hash_extended',
    cast: 'pg_catalog.timestamp',
    zero: `'2000-01-01'`,
  },
  bpchar: { fn: 'pg_catalog.hashbpcharextended', cast: 'pg_catalog.bpchar', zero: `''`, bytes: true },
};

/**
 * The 'hash' row hash: h0 = 0; for each column in order, h = hashtextextended(text, h # null),
 * where text is the column's text ('' for NULL) and null is 1 for NULL, else 0. No row value
 * and no record text is built (ROW(...)::text forms a tuple and quotes every field: most of the
 * cost); the chain keeps the order of columns, so a value moved to another column, or between
 * NULL and '', changes the hash. The text is the column's cast to text under the pinned
 * settings: the type's output function, except char(n), whose cast drops the padding (bpcharout
 * keeps it, as the row text did). Text is hashed by its bytes (collation "C"), so a
 * nondeterministic collation does not make two different strings hash alike. A column of a
 * TypedHash is hashed by value with its type's function, seeded the same way (NULL as the
 * type's zero with the seed flipped).
 */
export function rowHashSql(columns: readonly DigestColumn[]): string {
  let h = '0::int8';
  for (const c of columns) {
    const col = quoteIdent(c.name);
    if (c.typed) {
      const { fn, cast, zero, bytes } = TYPED_HASH[c.typed];
      const value = `coalesce((${col})::${cast}, ${zero}::${cast})${bytes ? ' COLLATE pg_catalog."C"' : ''}`;
      h = `${fn}(${value}, ${h} # (${col} IS NULL)::int::int8)`;
      continue;
    }
    const text = c.padded
      ? `pg_catalog.textin(pg_catalog.bpcharout(${col}))`
      : `(${col})::pg_catalog.text COLLATE pg_catalog."C"`;
    h = `pg_catalog.hashtextextended(coalesce(${text}, ''), ${h} # (${col} IS NULL)::int::int8)`;
  }
  return h;
}

/**
 * Row count and checksum of the rows matching `where`, as text. The checksum is the sum over rows
 * of a 60- or 64-bit hash of the row (named columns, in the given order; see ChecksumKind):
 * order independent, so no sort; a changed, missing or extra row changes it. sum(bigint)
 * accumulates in numeric (int128 where available), so the sum is exact and cannot overflow for
 * any row count.
 */
export function digestSql(
  relation: string,
  columns: ReadonlyArray<string | DigestColumn>,
  where: string,
  checksum: ChecksumKind = 'md5',
): string {
  // The verifier reports a table with no column to compare before it gets here: a bug if not.
  if (!columns.length) throw new RangeError('a checksum needs at least one column');
  const cols = columns.map((c) => (typeof c === 'string' ? { name: c } : c));
  const term =
    checksum === 'hash'
      ? rowHashSql(cols)
      : `('x' || substr(md5(convert_to(ROW(${cols.map((c) => quoteIdent(c.name)).join(', ')})::text, 'UTF8')), 1, 15))::bit(60)::bigint`;
  return `SELECT count(*)::text AS n, coalesce(sum(${term}), 0)::text AS s FROM ${relation} WHERE ${where}`;
}

/** Key values as a SQL row literal, for reports: ('1000', 'sku-1'). Pure. */
export function keyText(values: readonly string[]): string {
  return `(${values.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ')})`;
}

/** What decides the sort order of a key column on one server, as the catalogs say it. */
export interface KeyCollation {
  /** pg_collation.collprovider / pg_database.datlocprovider: c libc, i icu, b builtin, d default. */
  provider: string | null;
  locale: string | null;
  deterministic: boolean;
}

/**
 * A comparable name for a column's sort order, or null for a type without collation. Code-point
 * orders get one name: libc C and POSIX, libc C.UTF-8 (code point order in glibc), builtin C and
 * C.UTF-8. Encoding suffixes are normalised (en_US.UTF-8 = en_US.utf8). Two names that differ
 * may still sort alike: the caller then merely compares more coarsely. Pure.
 */
export function collationName(c: KeyCollation | null): string | null {
  if (!c) return null;
  const provider = c.provider ?? 'c';
  const locale = (c.locale ?? '').replace(/\.utf-?8$/i, '.utf8');
  if ((provider === 'c' || provider === 'b') && /^(C|POSIX)(\.utf8)?$/i.test(locale)) return 'C';
  const name = `${{ c: 'libc', i: 'icu', b: 'builtin' }[provider] ?? provider} ${locale}`;
  return c.deterministic ? name : `${name} (nondeterministic)`;
}

/**
 * For each key column, its sort order on one server: the column's collation, the database's
 * when the column uses "default". The catalogs' locale columns differ between major versions
 * (daticulocale in 15 and 16, datlocale from 17), hence to_jsonb. $1 is the table, $2 the key
 * column names.
 */
export const KEY_COLLATION_SQL = `
  SELECT a.attname AS name,
         CASE WHEN a.attcollation = 0 THEN NULL
              WHEN co.collname = 'default' THEN coalesce(db.j->>'datlocprovider', 'c')
              ELSE cj.j->>'collprovider' END AS provider,
         CASE WHEN a.attcollation = 0 THEN NULL
              WHEN co.collname = 'default' THEN
                CASE coalesce(db.j->>'datlocprovider', 'c') WHEN 'c' THEN db.j->>'datcollate'
                     ELSE coalesce(db.j->>'datlocale', db.j->>'daticulocale') END
              WHEN cj.j->>'collprovider' = 'c' THEN cj.j->>'collcollate'
              ELSE coalesce(cj.j->>'colllocale', cj.j->>'colliculocale', cj.j->>'collcollate') END AS locale,
         coalesce((cj.j->>'collisdeterministic')::boolean, true) AS deterministic
    FROM pg_attribute a
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN LATERAL (SELECT to_jsonb(co) AS j) cj ON true
    CROSS JOIN (SELECT to_jsonb(d) AS j FROM pg_database d WHERE d.datname = current_database()) db
   WHERE a.attrelid = $1::regclass AND a.attname = ANY($2::text[]) AND NOT a.attisdropped`;

/**
 * Columns of a table in attnum order, with whether each is generated, whether its type prints
 * blank-padded (char(n), or a domain over it: a domain has its base type's output function), its
 * TypedHash (null for any other type; a domain by its base type's output function again; char
 * only with a length of its own, bare bpchar keeps the spaces it was given) and its typmod
 * (char(n): n + 4). $1 is the table.
 */
export const COLUMNS_SQL = `
  SELECT a.attname AS name, a.attgenerated <> '' AS generated, a.atttypmod AS typmod,
         t.typoutput = 'pg_catalog.bpcharout'::pg_catalog.regproc AS padded,
         CASE WHEN t.typoutput IN ('pg_catalog.int2out'::pg_catalog.regproc, 'pg_catalog.int4out'::pg_catalog.regproc,
                                   'pg_catalog.int8out'::pg_catalog.regproc) THEN 'int'
              WHEN t.typoutput = 'pg_catalog.uuid_out'::pg_catalog.regproc THEN 'uuid'
              WHEN t.typoutput = 'pg_catalog.timestamp_out'::pg_catalog.regproc THEN 'timestamp'
              WHEN t.typoutput = 'pg_catalog.timestamptz_out'::pg_catalog.regproc THEN 'timestamptz'
              WHEN t.typoutput = 'pg_catalog.bpcharout'::pg_catalog.regproc AND a.atttypmod >= 0 THEN 'bpchar' END AS typed
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
   WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
   ORDER BY a.attnum`;
