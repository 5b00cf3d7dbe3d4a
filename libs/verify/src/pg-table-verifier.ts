import type { Client } from 'pg';
import { SpecError } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified, type SelectedTable } from '@pgferry/pg';
import {
  chunkRanges,
  collationName,
  COLUMNS_SQL,
  digestSql,
  integerKeyBounds,
  KEY_COLLATION_SQL,
  keySpanSql,
  keyText,
  nextBoundSql,
  rangeCondition,
  relationSql,
  HASH_PROBE_SQL,
  HASH_PROBES,
  VERIFY_SESSION_SETTINGS,
  type ChecksumKind,
  type DigestColumn,
  type KeyCollation,
  type KeyRange,
  type TypedHash,
} from './verify-plan';
import type { RangeMismatch, TableVerdict, VerifyReport } from './verify-report';

export interface VerifyProgress {
  /** Source table, quoted. */
  table: string;
  chunksDone: number;
  chunks: number;
  /** Source rows compared so far in this table. */
  rows: number;
}

export interface VerifyOptions {
  /** Rows per compared key range (default 100 000): smaller ranges locate a difference closer. */
  chunkRows?: number;
  /** Called after each range has been compared on both sides. */
  onProgress?: (p: VerifyProgress) => void;
  /**
   * An exported snapshot of the source (the one the destination was loaded from): the source
   * side is read under it, so rows written since do not count as differences.
   */
  sourceSnapshot?: string | null;
  /**
   * 'auto' (default): the fast 64-bit hash when both servers compute it alike, else md5; 'md5':
   * always md5. Either way a difference is a difference; only the speed changes.
   */
  checksum?: 'auto' | 'md5';
  /**
   * Ranges compared at once on each server (default 1), each on its own connection (opened with
   * `connect`; without it, 1). With more than one, the connections are the parallelism and each
   * range query runs without parallel workers: starting workers for every range query costs
   * more than it gains when the ranges are themselves spread over connections (one backend per
   * side on two cores: 2.6-2.9 against 3.4-3.6 cpu-s for 1.5M rows compared on both servers).
   */
  jobs?: number;
  /** Opens the further connections `jobs` asks for; they are ended before verifyTables returns. */
  connect?: { source: () => Promise<Client>; destination: () => Promise<Client> };
}

/** With jobs above 1: no parallel workers per range query (see VerifyOptions.jobs). */
const SERIAL_QUERY: ReadonlyArray<readonly [string, string]> = [['max_parallel_workers_per_gather', '0']];

/**
 * Every selected table compared on both servers without moving rows: per key range, the row
 * count and an order-independent checksum (see digestSql and ChecksumKind). The two servers work
 * at once, each through the ranges at its own pace (see compareTables). Columns are named, in
 * the source's attnum order, so a different column order on the destination does not matter;
 * generated columns are left out (the destination computes its own). Column text is printed
 * under the same pinned settings on both sides (VERIFY_SESSION_SETTINGS), and the caller's
 * settings are restored afterwards.
 *
 * Ranges: boundaries are every chunkRows-th key of the source (a walk along the key's index), and
 * the same ranges are evaluated on both sides. A table without a key is compared whole; so is a
 * keyed table whose key sorts differently on the two servers (a different collation would put
 * the same rows in different ranges). A table missing on the destination, or missing a column
 * there, is reported, not thrown. Read-only on both servers; safe to repeat.
 */
export async function verifyTables(
  source: Client,
  destination: Client,
  tables: SelectedTable[],
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const chunkRows = options.chunkRows ?? 100_000;
  if (!Number.isInteger(chunkRows) || chunkRows < 1)
    throw new SpecError([`verify option chunkRows must be a positive integer, got ${chunkRows}`]);
  const jobs = options.connect ? Math.max(1, Math.floor(options.jobs ?? 1)) : 1;
  const settings = jobs > 1 ? [...VERIFY_SESSION_SETTINGS, ...SERIAL_QUERY] : VERIFY_SESSION_SETTINGS;
  const pinned = await Promise.allSettled([
    pinSettings(source, 'source', settings),
    pinSettings(destination, 'destination', settings),
  ]);
  const restore = pinned.flatMap((p) => (p.status === 'fulfilled' ? [p.value] : []));
  const failed = pinned.find((p): p is PromiseRejectedResult => p.status === 'rejected');
  if (failed) {
    await Promise.all(restore.map((r) => r().catch(() => undefined)));
    throw failed.reason;
  }
  const verdicts: TableVerdict[] = [];
  let checksum: ChecksumKind = 'md5';
  const sources = [source];
  const destinations = [destination];
  const opened: Client[] = [];
  try {
    if (options.checksum !== 'md5') checksum = await chooseChecksum(source, destination);
    if (options.sourceSnapshot) await importSnapshot(source, options.sourceSnapshot);
    try {
      for (let i = 1; i < jobs; i++) {
        const [s, d] = await Promise.all([options.connect!.source(), options.connect!.destination()]);
        opened.push(s, d);
        // Their settings need no restoring: the connections end with the verify.
        await Promise.all([pinSettings(s, 'source', settings), pinSettings(d, 'destination', settings)]);
        if (options.sourceSnapshot) await importSnapshot(s, options.sourceSnapshot);
        sources.push(s);
        destinations.push(d);
      }
      const work: TableWork[] = [];
      for (const t of tables) {
        const planned = await planTable(source, destination, t);
        verdicts.push(planned.verdict);
        if (planned.work) work.push(planned.work);
      }
      await compareTables(sources, destinations, work, chunkRows, checksum, options);
    } finally {
      if (options.sourceSnapshot)
        await Promise.all(sources.map((c) => c.query('COMMIT').catch(() => undefined)));
    }
  } finally {
    // Best effort: a broken connection must not hide the error that broke it.
    await Promise.all([
      ...restore.map((r) => r().catch(() => undefined)),
      ...opened.map((c) => c.end().catch(() => undefined)),
    ]);
  }
  return {
    ok: verdicts.every((v) => !v.problem && v.mismatches.length === 0),
    tables: verdicts,
    atSnapshot: Boolean(options.sourceSnapshot),
    checksum,
  };
}

/**
 * 'hash' when both servers hash HASH_PROBES to the same values (same byte order, encoding and
 * function), else 'md5'. Runs before any transaction is opened: a failing probe (a server
 * without hashtextextended, or an encoding that cannot hold a probe) only means md5.
 */
async function chooseChecksum(source: Client, destination: Client): Promise<ChecksumKind> {
  const probe = (c: Client) =>
    c.query(HASH_PROBE_SQL, [HASH_PROBES]).then(
      (r) => r.rows[0].h as string,
      () => null,
    );
  const [a, b] = await Promise.all([probe(source), probe(destination)]);
  return a !== null && a === b ? 'hash' : 'md5';
}

/** Opens a read-only transaction on the source under the exported snapshot `name`. */
async function importSnapshot(source: Client, name: string): Promise<void> {
  await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(name)}`);
  } catch (err) {
    await source.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, `importing snapshot ${name} on the source for verify`);
  }
}

/** Sets `settings` for the session; returns the function that puts the old values back. */
async function pinSettings(
  client: Client,
  side: string,
  settings: ReadonlyArray<readonly [string, string]>,
): Promise<() => Promise<void>> {
  const names = settings.map(([n]) => n);
  const values = settings.map(([, v]) => v);
  const apply = (vs: string[]) =>
    client.query('SELECT set_config(n, v, false) FROM unnest($1::text[], $2::text[]) AS s(n, v)', [
      names,
      vs,
    ]);
  try {
    const { rows } = await client.query({
      text: 'SELECT current_setting(n) FROM unnest($1::text[]) WITH ORDINALITY AS s(n, i) ORDER BY i',
      values: [names],
      rowMode: 'array',
    });
    const old = (rows as string[][]).map((r) => r[0]);
    await apply(values);
    return async () => void (await apply(old));
  } catch (err) {
    throw classifyPgError(err, `setting the verify session settings on the ${side}`);
  }
}

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

interface Digest {
  rows: number;
  sum: string;
}

/** A table whose ranges are to be compared: its verdict (filled in as ranges complete) and SQL parts. */
interface TableWork {
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
class RangeFeed {
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
async function planTable(
  source: Client,
  destination: Client,
  t: SelectedTable,
): Promise<{ verdict: TableVerdict; work?: TableWork }> {
  const table = quoteQualified(t.schema, t.table);
  const target = quoteQualified(t.targetSchema, t.targetTable);
  const verdict: TableVerdict = {
    table,
    target,
    sourceRows: 0,
    destinationRows: 0,
    chunks: 0,
    key: t.primaryKey.length ? t.primaryKey : t.uniqueNotNullKey,
    mismatches: [],
  };
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
    const compared = srcCols.filter((c) => !c.generated);
    const onDestination = new Map(dstCols.map((c) => [c.name, c]));
    const absent = compared.filter((c) => !onDestination.has(c.name)).map((c) => c.name);
    if (absent.length) {
      verdict.problem = `${target} has no column ${absent.map(quoteIdent).join(', ')} on the destination`;
      return { verdict };
    }
    const notes: string[] = [];
    const generated = srcCols.filter((c) => c.generated).map((c) => quoteIdent(c.name));
    if (generated.length) notes.push(`generated columns not compared: ${generated.join(', ')}`);
    const known = new Set(srcCols.map((c) => c.name));
    const extra = dstCols.filter((c) => !known.has(c.name)).map((c) => quoteIdent(c.name));
    if (extra.length) notes.push(`columns only on the destination, not compared: ${extra.join(', ')}`);
    if (notes.length) verdict.notes = notes;
    if (!compared.length) {
      verdict.problem = `${table} has no column to compare`;
      return { verdict };
    }

    if (verdict.key.length) {
      const differs = await keyOrderDifference(source, destination, table, target, verdict.key);
      if (differs) {
        verdict.wholeTableReason = differs;
        verdict.key = [];
      }
    }
    return {
      verdict,
      work: {
        verdict,
        src: relationSql(t.schema, t.table, t.partitioned),
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
 * Compares the planned tables range by range, each server on its own: the source walks every
 * table's key to its chunk boundaries (nextBoundSql) on its first connection while its other
 * connections digest the ranges already found; the destination's connections digest each range
 * as soon as its end is known. Neither side waits for the other's range to finish, so both
 * servers are busy at once but for the first boundary. Each side hands its ranges out in order
 * to its connections. A range is counted (onProgress) once both sides have digested it; its
 * mismatch, if any, is reported in range order at the end. The first error stops both sides.
 */
async function compareTables(
  sources: Client[],
  destinations: Client[],
  work: TableWork[],
  chunkRows: number,
  checksum: ChecksumKind,
  options: VerifyOptions,
): Promise<void> {
  let stopped = false;
  const settle = (w: TableWork, i: number) => {
    const { a, b } = w.digests[i];
    if (!a || !b) return;
    const v = w.verdict;
    const { from, to } = w.ranges.ranges[i];
    v.sourceRows += a.rows;
    v.destinationRows += b.rows;
    if (a.rows !== b.rows || a.sum !== b.sum)
      w.found.push({
        at: i,
        mismatch: {
          from: from && keyText(from),
          to: to && keyText(to),
          sourceRows: a.rows,
          destinationRows: b.rows,
        },
      });
    w.settled++;
    options.onProgress?.({ table: v.table, chunksDone: w.settled, chunks: v.chunks, rows: v.sourceRows });
  };
  const context = (w: TableWork) => `verifying ${w.verdict.table} against ${w.verdict.target}`;
  /** One side: its connections take the ranges of every table in order, each the next one. */
  const side = (
    pick: (w: TableWork) => { relation: string; columns: DigestColumn[] },
    put: (d: { a?: Digest; b?: Digest }, x: Digest) => void,
  ) => {
    let t = 0;
    let i = 0;
    const take = async (): Promise<{ w: TableWork; at: number; range: KeyRange } | null> => {
      while (!stopped && t < work.length) {
        const w = work[t];
        const at = i++;
        const range = await w.ranges.at(at);
        if (range) return { w, at, range };
        // w has no range `at`: the first connection to find out moves on to the next table.
        if (work[t] === w) {
          t++;
          i = 0;
        }
      }
      return null;
    };
    return async (client: Client) => {
      for (let job = await take(); job; job = await take()) {
        const { w, at, range } = job;
        const { relation, columns } = pick(w);
        try {
          const where = rangeCondition(w.verdict.key, range.from, range.to);
          put(
            (w.digests[at] ??= {}),
            await digest(client, digestSql(relation, columns, where.sql, checksum), where.params),
          );
        } catch (err) {
          throw classifyPgError(err, context(w));
        }
        settle(w, at);
      }
    };
  };
  const findRanges = async () => {
    for (const w of work) {
      if (stopped) return;
      try {
        await walkKey(sources[0], w, chunkRows);
      } catch (err) {
        throw classifyPgError(err, context(w));
      }
    }
  };
  const stopOnError = (p: Promise<void>) =>
    p.catch((err) => {
      stopped = true;
      for (const w of work) w.ranges.fail(err);
      throw err;
    });
  const sourceSide = side(
    (w) => ({ relation: w.src, columns: w.srcColumns }),
    (d, x) => (d.a = x),
  );
  const destinationSide = side(
    (w) => ({ relation: w.dst, columns: w.dstColumns }),
    (d, x) => (d.b = x),
  );
  const results = await Promise.allSettled([
    stopOnError(findRanges().then(() => sourceSide(sources[0]))),
    ...sources.slice(1).map((c) => stopOnError(sourceSide(c))),
    ...destinations.map((c) => stopOnError(destinationSide(c))),
  ]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  for (const w of work) w.verdict.mismatches = w.found.sort((x, y) => x.at - y.at).map((f) => f.mismatch);
}

/**
 * Feeds w's key ranges, boundary by boundary (boundsSql's boundaries, found by walking the key),
 * and sets its number of ranges; a table without a key is one range, the whole table. A key of
 * one integer column whose values are dense is split by value instead (integerKeyBounds): two
 * index probes instead of reading every key, and all its ranges known at once, so the
 * connections of both sides do not wait on the walk (on a freshly loaded source, the walk read
 * 2M keys in about 1.5 s of the verify's 3).
 */
async function walkKey(client: Client, w: TableWork, chunkRows: number): Promise<void> {
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

async function digest(client: Client, sql: string, params: string[]): Promise<Digest> {
  const { rows } = await client.query(sql, params);
  return { rows: Number(rows[0].n), sum: rows[0].s };
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
): Promise<string | null> {
  const read = async (client: Client, rel: string) => {
    const { rows } = await client.query(KEY_COLLATION_SQL, [rel, key]);
    return new Map(
      (rows as Array<KeyCollation & { name: string }>).map((r) => [
        r.name,
        collationName(r.provider === null && r.locale === null ? null : r),
      ]),
    );
  };
  const [a, b] = await Promise.all([read(source, table), read(destination, target)]);
  for (const k of key) {
    if (!b.has(k)) return `key column ${quoteIdent(k)} is missing on the destination`;
    if (a.get(k) !== b.get(k))
      return `key column ${quoteIdent(k)} sorts by ${a.get(k) ?? 'no collation'} on the source and ${b.get(k) ?? 'no collation'} on the destination`;
  }
  return null;
}
