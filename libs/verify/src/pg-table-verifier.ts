import type { Client } from 'pg';
import { SpecError, type NameCase } from '@pgferry/core';
import { classifyPgError, type SelectedTable } from '@pgferry/pg';
import {
  digestSql,
  keyText,
  rangeCondition,
  VERIFY_SESSION_SETTINGS,
  type ChecksumKind,
  type DigestColumn,
  type KeyRange,
} from './verify-plan';
import type { TableVerdict, VerifyReport } from './verify-report';
import { planTable, walkKey, type Digest, type TableWork } from './table-work';
import { chooseChecksum, importSnapshot, pinSettings } from './verify-session';

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
  /** objects.nameCase: the destination's columns are the source's in this case. */
  nameCase?: NameCase;
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
        const planned = await planTable(source, destination, t, {
          nameCase: options.nameCase,
          atSnapshot: Boolean(options.sourceSnapshot),
        });
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
          fromKey: from,
          toKey: to,
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

async function digest(client: Client, sql: string, params: string[]): Promise<Digest> {
  const { rows } = await client.query(sql, params);
  return { rows: Number(rows[0].n), sum: rows[0].s };
}
