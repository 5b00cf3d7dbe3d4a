import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { findPgBinDir } from '@pgferry/pg';

export interface PgbenchTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

export interface PgbenchOptions {
  database: string;
  /** Schema of the pgbench tables (loadPgbenchLike's `schema`); default public. */
  schema?: string;
  clients?: number;
  /** Run for this many seconds (-T) ... */
  seconds?: number;
  /** ... or this many transactions per client (-t): deterministic, for tests. */
  transactionsPerClient?: number;
  /** Built-in script: tpcb-like (default), simple-update, select-only. */
  script?: 'tpcb-like' | 'simple-update' | 'select-only';
}

export interface PgbenchResult {
  transactions: number;
  /** Transactions per second, without connection setup. */
  tps: number;
  failed: number;
}

/**
 * Runs PostgreSQL's own pgbench (from the local binaries) against tables made by
 * loadPgbenchLike (or `pgbench -i`): the TPC-B-like load that DESIGN's incremental tests and the
 * cdc benchmark use. Resolves with what pgbench reports; rejects with its output when it fails.
 * The password goes through PGPASSWORD, never the command line.
 */
export function runPgbench(target: PgbenchTarget, options: PgbenchOptions): Promise<PgbenchResult> {
  const bin = findPgBinDir();
  if (!bin) return Promise.reject(new Error('pgbench: no PostgreSQL binaries found (set PGFERRY_PG_BIN)'));
  const clients = options.clients ?? 1;
  const args = [
    '-h',
    target.host,
    '-p',
    String(target.port),
    '-U',
    target.user,
    '-n',
    '-b',
    options.script ?? 'tpcb-like',
    '-c',
    String(clients),
    '-j',
    String(Math.min(clients, 4)),
    ...(options.seconds !== undefined
      ? ['-T', String(options.seconds)]
      : ['-t', String(options.transactionsPerClient ?? 10)]),
    options.database,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, PGPASSWORD: target.password };
  // PGOPTIONS splits on spaces: a backslash keeps one inside the value.
  if (options.schema)
    env.PGOPTIONS = `-csearch_path="${options.schema.replace(/"/g, '""')}"`.replace(
      /[\\ ]/g,
      (c) => `\\${c}`,
    );
  return new Promise((resolve, reject) => {
    const child = spawn(join(bin, 'pgbench'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      const processed = /number of transactions actually processed: (\d+)/.exec(out);
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
      const failed = /number of failed transactions: (\d+)/.exec(out);
      if (code !== 0 || !processed || !tps)
        return reject(new Error(`pgbench exited with ${code}:\n${out.slice(-2000)}`));
      resolve({
        transactions: Number(processed[1]),
        tps: Number(tps[1]),
        failed: failed ? Number(failed[1]) : 0,
      });
    });
  });
}
