import type { Client } from 'pg';
import { DataError } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified, type SelectedTable } from '@pgferry/pg';
import { PIPELINE_SESSION_SQL } from '../session';

/** One key range of one table whose two sides disagree. */
export interface RangeMismatch {
  /** Key of the first row of the range as text ("(1,'a')"), or null for the table's start. */
  from: string | null;
  /** First key after the range, or null for the table's end. */
  to: string | null;
  sourceRows: number;
  destinationRows: number;
}

export interface TableVerdict {
  /** Source table, quoted. */
  table: string;
  /** Destination table, quoted. */
  target: string;
  sourceRows: number;
  destinationRows: number;
  chunks: number;
  /** Key columns the ranges are over; empty: the table was compared whole (no key). */
  key: string[];
  /** Why the table could not be compared at all (missing on the destination). */
  problem?: string;
  mismatches: RangeMismatch[];
}

export interface VerifyReport {
  ok: boolean;
  tables: TableVerdict[];
  /** The source was read under the load's snapshot (else: as it is now). */
  atSnapshot?: boolean;
}

export interface VerifyOptions {
  /** Rows per compared range (default 100 000). */
  chunkRows?: number;
  onProgress?: (p: { table: string; chunksDone: number; chunks: number; rows: number }) => void;
  /**
   * An exported snapshot of the source (the one the destination was loaded from): the source
   * side is read under it, so rows written since do not count as differences.
   */
  sourceSnapshot?: string | null;
}

interface Side {
  client: Client;
  table: string;
}

/**
 * Every selected table compared on both servers without moving rows: per key range, the row
 * count and an order-independent checksum (the sum of a 60-bit slice of md5 of each row's text,
 * summed as numeric so it never overflows). No ORDER BY is needed: each side scans the range once.
 * Row text is produced under the pipeline's session settings on both sides, so it does not
 * depend on either server's TimeZone or DateStyle. Columns are named, in the source's order,
 * so a different column order on the destination does not matter; generated columns are
 * compared too (the destination computes them again).
 *
 * Ranges: boundaries are every chunkRows-th key of the source, read in one ordered scan of its
 * key (the primary key index), and the same ranges are evaluated on both sides. A table without
 * a key is compared whole. Read-only on both servers.
 */
export async function verifyTables(
  source: Client,
  destination: Client,
  tables: SelectedTable[],
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const chunkRows = options.chunkRows ?? 100_000;
  await Promise.all([source.query(PIPELINE_SESSION_SQL), destination.query(PIPELINE_SESSION_SQL)]);
  const verdicts: TableVerdict[] = [];
  if (options.sourceSnapshot) {
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(options.sourceSnapshot)}`);
    } catch (err) {
      await source.query('ROLLBACK').catch(() => undefined);
      throw classifyPgError(err, `importing snapshot ${options.sourceSnapshot} on the source for verify`);
    }
  }
  try {
    for (const t of tables) verdicts.push(await verifyTable(source, destination, t, chunkRows, options));
  } finally {
    if (options.sourceSnapshot) await source.query('COMMIT').catch(() => undefined);
  }
  return {
    ok: verdicts.every((v) => !v.problem && v.mismatches.length === 0),
    tables: verdicts,
    atSnapshot: Boolean(options.sourceSnapshot),
  };
}

async function verifyTable(
  source: Client,
  destination: Client,
  t: SelectedTable,
  chunkRows: number,
  options: VerifyOptions,
): Promise<TableVerdict> {
  const table = quoteQualified(t.schema, t.table);
  const target = quoteQualified(t.targetSchema, t.targetTable);
  const key = t.primaryKey.length ? t.primaryKey : t.uniqueNotNullKey;
  const verdict: TableVerdict = {
    table,
    target,
    sourceRows: 0,
    destinationRows: 0,
    chunks: 0,
    key,
    mismatches: [],
  };
  try {
    const exists = await destination.query('SELECT to_regclass($1) IS NOT NULL AS has', [target]);
    if (!exists.rows[0].has) {
      verdict.problem = `${target} does not exist on the destination`;
      return verdict;
    }
    const columns = await readColumns(source, table);
    const bounds = key.length ? await readBounds(source, table, key, chunkRows) : [];
    const ranges: Array<[string[] | null, string[] | null]> = [];
    for (let i = 0; i <= bounds.length; i++) ranges.push([i ? bounds[i - 1] : null, bounds[i] ?? null]);
    verdict.chunks = ranges.length;
    const src: Side = { client: source, table };
    const dst: Side = { client: destination, table: target };
    for (const [n, [from, to]] of ranges.entries()) {
      const [a, b] = await Promise.all([src, dst].map((side) => rangeDigest(side, columns, key, from, to)));
      verdict.sourceRows += a.rows;
      verdict.destinationRows += b.rows;
      if (a.rows !== b.rows || a.sum !== b.sum)
        verdict.mismatches.push({
          from: from && keyText(from),
          to: to && keyText(to),
          sourceRows: a.rows,
          destinationRows: b.rows,
        });
      options.onProgress?.({ table, chunksDone: n + 1, chunks: ranges.length, rows: verdict.sourceRows });
    }
    return verdict;
  } catch (err) {
    throw classifyPgError(err, `verifying ${table} against ${target}`);
  }
}

interface Column {
  name: string;
}

async function readColumns(client: Client, table: string): Promise<Column[]> {
  const { rows } = await client.query(
    `SELECT attname AS name FROM pg_attribute
      WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [table],
  );
  return rows as Column[];
}

/** Every chunkRows-th key of the source in key order (as text), in one ordered scan. */
async function readBounds(
  client: Client,
  table: string,
  key: string[],
  chunkRows: number,
): Promise<string[][]> {
  const cols = key.map(quoteIdent);
  const { rows } = await client.query({
    text: `SELECT ${cols.map((c) => `${c}::text`).join(', ')} FROM (
             SELECT ${cols.join(', ')}, row_number() OVER (ORDER BY ${cols.join(', ')}) AS rn FROM ${table}
           ) k WHERE rn % $1 = 1 AND rn > 1 ORDER BY rn`,
    values: [chunkRows],
    rowMode: 'array',
  });
  return rows as string[][];
}

/**
 * The SQL condition of a key range: (k1, k2) >= (from) AND (k1, k2) < (to), values as untyped
 * text parameters, which the row comparison resolves to each key column's own type (so a type
 * renamed with its schema on the destination still works). Pure.
 */
export function rangeCondition(
  key: readonly string[],
  from: readonly string[] | null,
  to: readonly string[] | null,
): { sql: string; params: string[] } {
  const params: string[] = [];
  const tuple = `(${key.map(quoteIdent).join(', ')})`;
  const values = (v: readonly string[]) => `(${v.map((x) => `$${params.push(x)}`).join(', ')})`;
  const parts: string[] = [];
  if (from) parts.push(`${tuple} >= ${values(from)}`);
  if (to) parts.push(`${tuple} < ${values(to)}`);
  return { sql: parts.length ? parts.join(' AND ') : 'true', params };
}

async function rangeDigest(
  side: Side,
  columns: Column[],
  key: string[],
  from: string[] | null,
  to: string[] | null,
): Promise<{ rows: number; sum: string }> {
  const where = rangeCondition(key, from, to);
  const row = `ROW(${columns.map((c) => quoteIdent(c.name)).join(', ')})::text`;
  const { rows } = await side.client.query(
    `SELECT count(*)::bigint::text AS n,
            coalesce(sum(('x' || substr(md5(${row}), 1, 15))::bit(60)::bigint::numeric), 0)::text AS s
       FROM ${side.table} WHERE ${where.sql}`,
    where.params,
  );
  return { rows: Number(rows[0].n), sum: rows[0].s };
}

function keyText(values: readonly string[]): string {
  return `(${values.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ')})`;
}

/** One line per table, then each differing range; for the CLI and the phase detail. */
export function formatVerifyReport(report: VerifyReport): string {
  const lines: string[] = [];
  for (const v of report.tables) {
    const same = v.table === v.target ? v.table : `${v.table} -> ${v.target}`;
    if (v.problem) {
      lines.push(`  MISSING   ${same}: ${v.problem}`);
      continue;
    }
    const status = v.mismatches.length ? 'DIFFERENT' : 'equal    ';
    lines.push(
      `  ${status} ${same}: ${v.sourceRows} rows on the source, ${v.destinationRows} on the destination, ${v.chunks} ${v.key.length ? `range${v.chunks === 1 ? '' : 's'} of ${v.key.map(quoteIdent).join(', ')}` : 'whole-table comparison (no key)'}`,
    );
    for (const m of v.mismatches)
      lines.push(
        `            ${describeRange(v, m)}: ${m.sourceRows} rows on the source, ${m.destinationRows} on the destination${m.sourceRows === m.destinationRows ? ', same count but different contents' : ''}`,
      );
  }
  return lines.join('\n');
}

function describeRange(v: TableVerdict, m: RangeMismatch): string {
  if (!v.key.length) return 'the whole table';
  const k = `(${v.key.map(quoteIdent).join(', ')})`;
  if (m.from && m.to) return `${k} from ${m.from} to before ${m.to}`;
  if (m.from) return `${k} from ${m.from} to the end`;
  if (m.to) return `${k} before ${m.to}`;
  return 'the whole table';
}

/** Throws a DataError naming every differing table and key range; returns the summary otherwise. */
export function assertVerified(report: VerifyReport): string {
  if (report.ok) {
    const rows = report.tables.reduce((n, v) => n + v.sourceRows, 0);
    return `${report.tables.length} tables equal (${rows} rows compared by count and checksum)`;
  }
  const bad = report.tables.filter((v) => v.problem || v.mismatches.length);
  const why = report.atSnapshot
    ? ''
    : '\nThe source was compared as it is now, not at the snapshot the destination was loaded from (that snapshot ended with an earlier run): ranges written to since then differ too; compare again once writes to the source have stopped.';
  throw new DataError(
    `verify found ${bad.length} table${bad.length === 1 ? '' : 's'} that differ between source and destination:\n${formatVerifyReport({ ok: false, tables: bad })}${why}`,
  );
}
