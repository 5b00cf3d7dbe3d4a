import type { Client } from 'pg';
import type { NameCase } from '@pgferry/core';
import { caseName, classifyPgError, quoteIdent, quoteQualified, type SelectedTable } from '@pgferry/pg';
import {
  chunkRanges,
  collationName,
  COLUMNS_SQL,
  integerKeyBounds,
  KEY_COLLATION_SQL,
  keySpanSql,
  nextBoundSql,
  relationSql,
  type DigestColumn,
  type KeyCollation,
  type KeyRange,
  type TypedHash,
} from './verify-plan';
import type { RangeMismatch, TableVerdict } from './verify-report';

interface ColumnRow {
  name: string;
  generated: boolean;
  padded: boolean;
  typed: TypedHash | null;
  typmod: number;
}

/** The TypedHash both sides hash a column by, or null: the same on both, and for char the same n. */
function sharedTypedHash(a: ColumnRow, b: ColumnRow): TypedHash | null {
  return a.typed === b.typed && (a.typed !== 'bpchar' || a.typmod === b.typmod) ? a.typed : null;
}

export interface Digest {
  rows: number;
  sum: string;
}

/** A table whose ranges are to be compared: its verdict (filled in as ranges complete) and SQL parts. */
export interface TableWork {
  verdict: TableVerdict;
  src: string;
  dst: string;
  /** The source table's regclass text, and whether its key is one integer column (see walkKey). */
  table: string;
  integerKey: boolean;
  srcColumns: DigestColumn[];
  dstColumns: DigestColumn[];
  /** The key ranges, as the source side finds them. */
  ranges: RangeFeed;
  digests: Array<{ a?: Digest; b?: Digest }>;
  /** Ranges digested on both sides so far. */
  settled: number;
  /** Mismatches found so far, by range index (ranges settle in any order). */
  found: Array<{ at: number; mismatch: RangeMismatch }>;
}

/**
 * A table's key ranges as the source side walks its key, for both sides' connections to follow:
 * `at(i)` waits until range i is known and gives null after the last one; `fail` makes every
 * waiting and later `at` throw.
 */
export class RangeFeed {
  readonly ranges: KeyRange[] = [];
  private ended = false;
  private failure: { err: unknown } | null = null;
  /** Everyone waiting in `at`: several connections of a side may wait on one table. */
  private wakers: Array<() => void> = [];

  push(r: KeyRange): void {
    this.ranges.push(r);
    this.notify();
  }
  end(): void {
    this.ended = true;
    this.notify();
  }
  fail(err: unknown): void {
    this.failure ??= { err };
    this.notify();
  }
  private notify(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const w of wakers) w();
  }
  async at(i: number): Promise<KeyRange | null> {
    for (;;) {
      if (this.failure) throw this.failure.err;
      if (i < this.ranges.length) return this.ranges[i];
      if (this.ended) return null;
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }
}

/**
 * Checks that the table can be compared (it exists on the destination with every compared
 * column) and how (by key ranges, or whole); returns the verdict alone when it cannot be.
 */
export async function planTable(
  source: Client,
  destination: Client,
  t: SelectedTable,
  view: { nameCase?: NameCase; atSnapshot?: boolean } = {},
): Promise<{ verdict: TableVerdict; work?: TableWork }> {
  const { nameCase } = view;
  // The destination's view of the source table (objects.include[].where / columns and
  // objects.nameCase): its rows through the filter, its listed columns under the destination's
  // names. Every query of the source side reads that view.
  const as = (name: string) => caseName(name, nameCase);
  const table = quoteQualified(t.schema, t.table);
  const target = quoteQualified(t.targetSchema, t.targetTable);
  const verdict: TableVerdict = {
    table,
    target,
    sourceRows: 0,
    destinationRows: 0,
    chunks: 0,
    key: (t.primaryKey.length ? t.primaryKey : t.uniqueNotNullKey).map(as),
    mismatches: [],
  };
  // Changes the include entry leaves out make the tables differ by design once the stream ran.
  const left = ['insert', 'update', 'delete', 'truncate'].filter(
    (op) => t.operations && !t.operations.includes(op as never),
  );
  if (left.length && !view.atSnapshot) {
    verdict.skipped = `not compared: objects.include[].operations leaves out ${left.join(', ')}, so the destination keeps what the source no longer has`;
    return { verdict };
  }
  try {
    const kind = await destination.query('SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)', [
      target,
    ]);
    if (!kind.rows.length) {
      verdict.problem = `${target} does not exist on the destination`;
      return { verdict };
    }
    const [srcCols, dstCols] = (await Promise.all([
      source.query(COLUMNS_SQL, [table]).then((r) => r.rows),
      destination.query(COLUMNS_SQL, [target]).then((r) => r.rows),
    ])) as [ColumnRow[], ColumnRow[]];
    const viewCols = srcCols
      .filter((c) => !t.columns || t.columns.includes(c.name))
      .map((c) => ({ ...c, source: c.name, name: as(c.name) }));
    const compared = viewCols.filter((c) => !c.generated);
    const onDestination = new Map(dstCols.map((c) => [c.name, c]));
    const absent = compared.filter((c) => !onDestination.has(c.name)).map((c) => c.name);
    if (absent.length) {
      verdict.problem = `${target} has no column ${absent.map(quoteIdent).join(', ')} on the destination`;
      return { verdict };
    }
    const notes: string[] = [];
    const generated = viewCols.filter((c) => c.generated).map((c) => quoteIdent(c.name));
    if (generated.length) notes.push(`generated columns not compared: ${generated.join(', ')}`);
    const known = new Set(viewCols.map((c) => c.name));
    const extra = dstCols.filter((c) => !known.has(c.name)).map((c) => quoteIdent(c.name));
    if (extra.length) notes.push(`columns only on the destination, not compared: ${extra.join(', ')}`);
    if (notes.length) verdict.notes = notes;
    if (!compared.length) {
      verdict.problem = `${table} has no column to compare`;
      return { verdict };
    }

    if (verdict.key.length) {
      const differs = await keyOrderDifference(source, destination, table, target, verdict.key, nameCase);
      if (differs) {
        verdict.wholeTableReason = differs;
        verdict.key = [];
      }
    }
    return {
      verdict,
      work: {
        verdict,
        src: viewSql(t, compared, nameCase),
        dst: relationSql(t.targetSchema, t.targetTable, kind.rows[0].relkind === 'p'),
        table,
        integerKey:
          verdict.key.length === 1 && compared.find((c) => c.name === verdict.key[0])?.typed === 'int',
        // A column is hashed by value only when both sides have the same TypedHash for it.
        srcColumns: compared.map((c) => ({
          name: c.name,
          padded: c.padded,
          typed: sharedTypedHash(c, onDestination.get(c.name)!),
        })),
        dstColumns: compared.map((c) => {
          const d = onDestination.get(c.name)!;
          return { name: c.name, padded: d.padded, typed: sharedTypedHash(c, d) };
        }),
        ranges: new RangeFeed(),
        digests: [],
        settled: 0,
        found: [],
      },
    };
  } catch (err) {
    throw classifyPgError(err, `verifying ${table} against ${target}`);
  }
}

/**
 * Feeds w's key ranges, boundary by boundary (boundsSql's boundaries, found by walking the key),
 * and sets its number of ranges; a table without a key is one range, the whole table. A key of
 * one integer column whose values are dense is split by value instead (integerKeyBounds): two
 * index probes instead of reading every key, and all its ranges known at once, so the
 * connections of both sides do not wait on the walk (on a freshly loaded source, the walk read
 * 2M keys in about 1.5 s of the verify's 3).
 */
export async function walkKey(client: Client, w: TableWork, chunkRows: number): Promise<void> {
  const key = w.verdict.key;
  if (w.integerKey) {
    const { rows } = await client.query(keySpanSql(w.src, key[0]), [w.table]);
    const { lo, hi, estimate } = rows[0] as { lo: string | null; hi: string | null; estimate: number | null };
    const bounds =
      lo === null || hi === null ? [] : integerKeyBounds(lo, hi, Number(estimate ?? -1), chunkRows);
    if (bounds) {
      for (const r of chunkRanges(bounds.map((b) => [b]))) w.ranges.push(r);
      w.verdict.chunks = w.ranges.ranges.length;
      w.ranges.end();
      return;
    }
  }
  let from: string[] | null = null;
  for (;;) {
    let to: string[] | null = null;
    if (key.length) {
      const next = nextBoundSql(w.src, key, from, from ? chunkRows - 1 : chunkRows);
      const r = await client.query({ text: next.sql, values: next.params, rowMode: 'array' });
      to = (r.rows[0] as string[] | undefined) ?? null;
    }
    w.ranges.push({ from, to });
    if (!to) break;
    from = to;
  }
  w.verdict.chunks = w.ranges.ranges.length;
  w.ranges.end();
}

/**
 * Why key ranges would select different rows on the two servers, or null when the key sorts the
 * same on both: every key column has the same collation (by provider and locale) on each side.
 */
async function keyOrderDifference(
  source: Client,
  destination: Client,
  table: string,
  target: string,
  key: string[],
  nameCase?: NameCase,
): Promise<string | null> {
  const sourceKey = new Map(key.map((k) => [k, k]));
  if (nameCase) {
    // `key` holds the destination's names; the source's are those that case into them.
    const { rows } = await source.query(COLUMNS_SQL, [table]);
    for (const r of rows as ColumnRow[])
      if (key.includes(caseName(r.name, nameCase))) sourceKey.set(caseName(r.name, nameCase), r.name);
  }
  const read = async (client: Client, rel: string, names: string[], back: (n: string) => string) => {
    const { rows } = await client.query(KEY_COLLATION_SQL, [rel, names]);
    return new Map(
      (rows as Array<KeyCollation & { name: string }>).map((r) => [
        back(r.name),
        collationName(r.provider === null && r.locale === null ? null : r),
      ]),
    );
  };
  const [a, b] = await Promise.all([
    read(
      source,
      table,
      key.map((k) => sourceKey.get(k)!),
      (n) => caseName(n, nameCase),
    ),
    read(destination, target, key, (n) => n),
  ]);
  for (const k of key) {
    if (!b.has(k)) return `key column ${quoteIdent(k)} is missing on the destination`;
    if (a.get(k) !== b.get(k))
      return `key column ${quoteIdent(k)} sorts by ${a.get(k) ?? 'no collation'} on the source and ${b.get(k) ?? 'no collation'} on the destination`;
  }
  return null;
}

/**
 * The source side's relation: the table itself, or, for a filtered, column-limited or
 * case-mapped table, the SELECT of its listed columns (as the destination names them) through
 * its row filter, as the snapshot and the publication read it.
 */
function viewSql(
  t: SelectedTable,
  compared: ReadonlyArray<{ name: string; source: string }>,
  nameCase?: NameCase,
): string {
  const relation = relationSql(t.schema, t.table, t.partitioned);
  const renamed = compared.some((c) => c.name !== c.source);
  if (t.where === undefined && !t.columns && !renamed) return relation;
  const cols = compared.map((c) =>
    c.name === c.source ? quoteIdent(c.source) : `${quoteIdent(c.source)} AS ${quoteIdent(c.name)}`,
  );
  const where = t.where === undefined ? '' : ` WHERE (${t.where})`;
  return `(SELECT ${cols.join(', ')} FROM ${relation}${where}) AS ${quoteIdent(caseName(t.table, nameCase))}`;
}
