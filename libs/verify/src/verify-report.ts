import { DataError } from '@pgferry/core';
import { quoteIdent } from '@pgferry/pg';

/** One key range of one table whose two sides disagree. */
export interface RangeMismatch {
  /** Key of the first row of the range as a row literal ("('1', 'a')"), or null for the table's start. */
  from: string | null;
  /** First key after the range, or null for the table's end. */
  to: string | null;
  sourceRows: number;
  destinationRows: number;
  /** The bounds as key column texts (for narrowing the range down to rows, see rowDifferences). */
  fromKey?: string[] | null;
  toKey?: string[] | null;
}

export interface TableVerdict {
  /** Source table, quoted. */
  table: string;
  /** Destination table, quoted. */
  target: string;
  sourceRows: number;
  destinationRows: number;
  chunks: number;
  /** Key columns the ranges are over; empty: the table was compared whole. */
  key: string[];
  /** Why the table could not be compared at all (missing on the destination, missing columns). */
  problem?: string;
  /** Why a table with a key was compared whole (absent: it has no key). */
  wholeTableReason?: string;
  /** What was left out of the comparison, e.g. generated columns. */
  notes?: string[];
  /** Why the table was not compared, by the task's choice (objects.include[].operations). */
  skipped?: string;
  mismatches: RangeMismatch[];
}

export interface VerifyReport {
  ok: boolean;
  tables: TableVerdict[];
  /** The source was read under the load's snapshot (else: as it is now). */
  atSnapshot?: boolean;
  /** The row hash used (see ChecksumKind). */
  checksum?: 'hash' | 'md5';
}

const PAD = '            ';

/**
 * One line per table (status, names, rows on each side, how it was chunked), then one line per
 * differing range and per note. For the CLI and the phase detail. Pure.
 */
export function formatVerifyReport(report: VerifyReport): string {
  const lines: string[] = [];
  for (const v of report.tables) {
    const names = v.table === v.target ? v.table : `${v.table} -> ${v.target}`;
    if (v.problem) {
      lines.push(`  MISSING   ${names}: ${v.problem}`);
      continue;
    }
    if (v.skipped) {
      lines.push(`  skipped   ${names}: ${v.skipped}`);
      continue;
    }
    const status = v.mismatches.length ? 'DIFFERENT' : 'equal    ';
    const how = v.key.length
      ? `${v.chunks} range${v.chunks === 1 ? '' : 's'} of ${v.key.map(quoteIdent).join(', ')}`
      : `${v.chunks} whole-table comparison (${v.wholeTableReason ?? 'no key'})`;
    lines.push(
      `  ${status} ${names}: ${v.sourceRows} rows on the source, ${v.destinationRows} on the destination, ${how}`,
    );
    for (const m of v.mismatches) {
      const same = m.sourceRows === m.destinationRows ? ', same count but different contents' : '';
      lines.push(
        `${PAD}${describeRange(v, m)}: ${m.sourceRows} rows on the source, ${m.destinationRows} on the destination${same}`,
      );
    }
    for (const n of v.notes ?? []) lines.push(`${PAD}note: ${n}`);
  }
  return lines.join('\n');
}

/** The range of a mismatch in words: ("k1", "k2") from (...) to before (...). Pure. */
export function describeRange(v: Pick<TableVerdict, 'key'>, m: RangeMismatch): string {
  if (!v.key.length) return 'the whole table';
  const k = `(${v.key.map(quoteIdent).join(', ')})`;
  if (m.from && m.to) return `${k} from ${m.from} to before ${m.to}`;
  if (m.from) return `${k} from ${m.from} to the end`;
  if (m.to) return `${k} before ${m.to}`;
  return 'the whole table';
}

/**
 * The error of a failed verify: names every differing table (quoted) and each differing key range
 * with the rows on each side. Null when the report is ok. Not retriable: comparing again gives the
 * same answer until someone changes the data. Pure.
 */
export function verifyError(report: VerifyReport): DataError | null {
  if (report.ok) return null;
  const bad = report.tables.filter((v) => v.problem || v.mismatches.length);
  const why = report.atSnapshot
    ? ''
    : '\nThe source was compared as it is now, not at the snapshot the destination was loaded from (that snapshot ended with an earlier run): ranges written to since then differ too; compare again once writes to the source have stopped.';
  return new DataError(
    `verify found ${bad.length} table${bad.length === 1 ? '' : 's'} that differ between source and destination:\n${formatVerifyReport({ ok: false, tables: bad })}${why}`,
    { code: 'VERIFY_MISMATCH' },
  );
}

/** Throws verifyError(report) when it is not ok; returns a one-line summary otherwise. */
export function assertVerified(report: VerifyReport): string {
  const err = verifyError(report);
  if (err) throw err;
  const rows = report.tables.reduce((n, v) => n + v.sourceRows, 0);
  const skipped = report.tables.filter((v) => v.skipped).length;
  return `${report.tables.length - skipped} tables equal (${rows} rows compared by count and checksum)${skipped ? `, ${skipped} not compared (objects.include[].operations)` : ''}`;
}
