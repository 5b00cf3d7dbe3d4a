import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { PgferryError } from '@pgferry/core';
import { PgToolStderr } from './pg-restore-errors';

const execFileP = promisify(execFile);

/** pg_dump and pg_restore from one installation, with their version. */
export interface PgTools {
  pgDump: string;
  pgRestore: string;
  /** e.g. 150018 for 15.18, in server_version_num form. */
  versionNum: number;
  version: string;
}

/**
 * Where to look for the client tools. Only apps read the environment: they build this with
 * `pgToolSearchFromEnv(process.env)`.
 */
export interface PgToolSearch {
  /** An explicit bin directory ($PGFERRY_PG_BIN). When set it is the only place looked at. */
  binDir?: string;
  /** Directories holding <major>/bin (Debian and Ubuntu: /usr/lib/postgresql). */
  versionedRoots?: string[];
  /** A PATH-style list searched last. */
  path?: string;
}

export function pgToolSearchFromEnv(env: NodeJS.ProcessEnv): PgToolSearch {
  return {
    binDir: env.PGFERRY_PG_BIN || undefined,
    versionedRoots: ['/usr/lib/postgresql'],
    path: env.PATH ?? '',
  };
}

/** "pg_dump (PostgreSQL) 15.18 (Debian ...)" -> 150018; "17devel" -> 170000; "9.6.24" -> 90624. */
export function parsePgToolVersion(output: string): { versionNum: number; version: string } | null {
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(output);
  if (!m) return null;
  const major = Number(m[1]);
  const minor = Number(m[2] ?? 0);
  const versionNum = major >= 10 ? major * 10000 + minor : major * 10000 + minor * 100 + Number(m[3] ?? 0);
  return { versionNum, version: output.slice(m.index + m[0].indexOf(m[1])).split(/\s/)[0] };
}

/** The major version of a server_version_num: 150018 -> 15, 90624 -> 9.6. */
export function pgMajor(versionNum: number): number {
  if (versionNum >= 100000) return Math.floor(versionNum / 10000);
  return Math.floor(versionNum / 10000) + Math.floor((versionNum % 10000) / 100) / 10;
}

/** Candidate bin directories in search order: explicit, then versioned roots newest first, then PATH. */
export function candidateBinDirs(search: PgToolSearch): string[] {
  if (search.binDir) return [search.binDir];
  const dirs: string[] = [];
  for (const root of search.versionedRoots ?? []) {
    if (!existsSync(root)) continue;
    const majors = readdirSync(root)
      .filter((d) => /^\d+(\.\d+)?$/.test(d))
      .sort((a, b) => Number(b) - Number(a));
    for (const major of majors) dirs.push(join(root, major, 'bin'));
  }
  for (const dir of (search.path ?? '').split(delimiter)) if (dir) dirs.push(dir);
  return [...new Set(dirs)];
}

async function toolVersion(file: string): Promise<{ versionNum: number; version: string } | null> {
  try {
    const { stdout } = await execFileP(file, ['--version'], {
      timeout: 15_000,
      env: { PATH: process.env.PATH ?? '', LC_ALL: 'C' },
    });
    return parsePgToolVersion(stdout);
  } catch {
    return null;
  }
}

/**
 * Finds pg_dump and pg_restore of at least the major version of `minVersionNum` (a
 * server_version_num): pg_dump refuses older servers' successors, and an older pg_restore cannot
 * read a newer archive. Among acceptable installations the first in search order wins (versioned
 * roots newest first). Throws a PgferryError that names the version needed and how to get it.
 * Read-only; runs `--version` on each candidate.
 */
export async function findPgTools(
  minVersionNum: number,
  search: PgToolSearch,
  serverLabel: string,
): Promise<PgTools> {
  const needed = pgMajor(minVersionNum);
  const seen: string[] = [];
  let foundAny = false;
  for (const dir of candidateBinDirs(search)) {
    const pgDump = join(dir, 'pg_dump');
    const pgRestore = join(dir, 'pg_restore');
    if (!existsSync(pgDump) || !existsSync(pgRestore)) {
      if (search.binDir) seen.push(`${dir} has no pg_dump and pg_restore`);
      continue;
    }
    foundAny = true;
    const [dump, restore] = await Promise.all([toolVersion(pgDump), toolVersion(pgRestore)]);
    if (!dump || !restore) {
      seen.push(`${pgDump} did not report its version`);
      continue;
    }
    const version = Math.min(dump.versionNum, restore.versionNum);
    if (pgMajor(version) >= needed) {
      return { pgDump, pgRestore, versionNum: version, version: dump.version };
    }
    seen.push(`pg_dump ${dump.version} at ${pgDump}`);
  }
  const found = seen.length ? `found only ${seen.join(', ')}` : 'found none';
  const major = String(needed);
  throw new PgferryError(
    `the schema migration needs pg_dump and pg_restore of PostgreSQL ${major} or later (${serverLabel}); ${found}. ` +
      `Install the PostgreSQL ${major} client tools or newer (Debian/Ubuntu: apt-get install postgresql-client-${major}), ` +
      `or set PGFERRY_PG_BIN to a bin directory holding pg_dump and pg_restore ${major} or later`,
    { code: foundAny ? 'PG_TOOLS_TOO_OLD' : 'PG_TOOLS_NOT_FOUND' },
  );
}

export interface ToolRunOptions {
  /** The complete child environment (see libpqEnv); nothing is inherited. */
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Keep stdout (pg_restore -l). Otherwise it is discarded. */
  captureStdout?: boolean;
}

export interface ToolRunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: PgToolStderr;
}

/**
 * Runs a client tool without a shell. Secrets travel in `env` only, never in `args`, so they
 * are not visible in `ps`. Resolves with the exit status whatever it is; rejects only when the
 * tool cannot be started.
 */
export function runPgTool(file: string, args: string[], options: ToolRunOptions): Promise<ToolRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: options.signal,
    });
    const stderr = new PgToolStderr();
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => {
      if (options.captureStdout) out.push(b);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => stderr.push(s));
    child.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ABORT_ERR') return;
      reject(new PgferryError(`cannot run ${file}: ${err.message}`, { cause: err, code: 'PG_TOOL_START' }));
    });
    child.on('close', (exitCode, signal) => {
      stderr.end();
      resolve({ exitCode, signal, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}
