import type { Client } from 'pg';
import {
  classifyPgError,
  connect,
  describeEndpoint,
  listTables,
  quoteIdent,
  type Endpoint,
} from '@pgferry/pg';
import {
  describeRange,
  rowDifferences,
  verifyTables,
  type RowDifference,
  type VerifyReport,
} from '@pgferry/verify';
import { replayBounds } from './replay-bounds';
import { runReplay, type ReplayOptions } from './replay';

export interface ReplayVerifyOptions extends Omit<ReplayOptions, 'target' | 'bounds'> {
  /** The database compared with what the topics say it should hold. */
  database: Endpoint;
  /** Rows per compared key range (verifyTables' chunkRows, default 100 000). */
  chunkRows?: number;
  /** Differing rows named per table at most (default 5). */
  rowsPerTable?: number;
}

export interface ReplayVerifyResult {
  ok: boolean;
  report: VerifyReport;
  /** The first differing rows of each differing table (quoted name), in key order. */
  rows: Map<string, RowDifference[]>;
  /** The report in words, one line per table, range and row. */
  text: string;
  untilLsn: string | null;
}

const APP = { applicationName: 'pgferry replay verify' };

/**
 * Compares `database` with what the task's topics say it should hold at the point: the topics
 * are replayed (runReplay) into a scratch database on the same server,
 * `pgferry_replay_<run id>` (created afresh, dropped afterwards), then both are compared table
 * by table and range by range (verifyTables: count and checksum per key range), and each
 * differing range is narrowed to its first rows that differ (rowDifferences: the key, and the
 * first column that differs or which side lacks the row). Read-only on `database`; needs the
 * right to create databases on its server.
 */
export async function verifyAgainstReplay(opts: ReplayVerifyOptions): Promise<ReplayVerifyResult> {
  const bounds = await replayBounds(opts.kafka, opts.manifest, opts.point);
  const scratchName = `pgferry_replay_${opts.manifest.runId}`;
  const scratch: Endpoint = { ...opts.database, database: scratchName };
  const where = `the server of ${describeEndpoint(opts.database)}`;
  const admin = await connect(opts.database, 'destination', APP);
  try {
    await recreate(admin, scratchName, where);
    let expected: Client | null = null;
    let actual: Client | null = null;
    try {
      const replayed = await runReplay({ ...opts, target: scratch, bounds });
      expected = await connect(scratch, 'destination', APP);
      actual = await connect(opts.database, 'destination', APP);
      const wanted = new Set(opts.manifest.targets.map((t) => `${t.schema}\u0000${t.table}`));
      const tables = (await listTables(expected, `listing the tables replayed into ${scratchName}`))
        .filter((t) => wanted.has(`${t.schema}\u0000${t.table}`))
        .map((t) => ({ ...t, targetSchema: t.schema, targetTable: t.table }));
      const report = await verifyTables(expected, actual, tables, { chunkRows: opts.chunkRows });
      const rows = new Map<string, RowDifference[]>();
      const limit = opts.rowsPerTable ?? 5;
      for (const v of report.tables) {
        if (!v.key.length || !v.mismatches.length) continue;
        const found: RowDifference[] = [];
        for (const m of v.mismatches) {
          if (found.length >= limit) break;
          const sides = {
            expected: { client: expected, relation: v.table },
            actual: { client: actual, relation: v.target },
          };
          const range = { from: m.fromKey ?? null, to: m.toKey ?? null };
          found.push(...(await rowDifferences(sides, v.key, range, limit - found.length)));
        }
        rows.set(v.table, found);
      }
      return {
        ok: report.ok,
        report,
        rows,
        text: formatReplayVerify(report, rows),
        untilLsn: replayed.untilLsn,
      };
    } finally {
      await Promise.all([expected?.end(), actual?.end()].map((p) => p?.catch(() => undefined)));
    }
  } finally {
    await admin
      .query(`DROP DATABASE IF EXISTS ${quoteIdent(scratchName)} WITH (FORCE)`)
      .catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

/** Drops a scratch database an interrupted verify left, and creates it empty. */
async function recreate(admin: Client, name: string, where: string): Promise<void> {
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } catch (err) {
    throw classifyPgError(
      err,
      `creating scratch database ${name} on ${where} to replay the topics into (replay --verify needs CREATEDB there)`,
    );
  }
}

/** The report in words: "the topics" are the replayed side, "the database" the compared one. Pure. */
export function formatReplayVerify(report: VerifyReport, rows: ReadonlyMap<string, RowDifference[]>): string {
  const lines: string[] = [];
  const pad = '            ';
  for (const v of report.tables) {
    if (v.problem) {
      lines.push(`  MISSING   ${v.target}: ${v.problem}`);
      continue;
    }
    const status = v.mismatches.length ? 'DIFFERENT' : 'equal    ';
    lines.push(
      `  ${status} ${v.target}: ${v.sourceRows} rows in the topics, ${v.destinationRows} in the database`,
    );
    for (const m of v.mismatches)
      lines.push(
        `${pad}${describeRange(v, m)}: ${m.sourceRows} rows in the topics, ${m.destinationRows} in the database`,
      );
    for (const d of rows.get(v.table) ?? []) {
      if (d.kind === 'missing') lines.push(`${pad}row ${d.key}: missing in the database`);
      else if (d.kind === 'extra') lines.push(`${pad}row ${d.key}: in the database, not in the topics`);
      else
        lines.push(
          `${pad}row ${d.key}: column ${quoteIdent(d.column!)} is ${d.expected} in the topics, ${d.found} in the database`,
        );
    }
  }
  return lines.join('\n');
}
