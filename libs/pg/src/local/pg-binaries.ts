import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PgferryError } from '@pgferry/core';

/**
 * Where the PostgreSQL server binaries (initdb, pg_ctl, postgres) are: $PGFERRY_PG_BIN, else the newest
 * /usr/lib/postgresql/<major>/bin (Debian, Ubuntu), else `pg_config --bindir`. Null when none.
 */
export function findPgBinDir(): string | null {
  const fromEnv = process.env.PGFERRY_PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, 'initdb')) ? fromEnv : null;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((d) => /^\d+$/.test(d) && existsSync(join(root, d, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (majors.length) return join(root, majors[0], 'bin');
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    /* no pg_config on PATH */
  }
  return null;
}

/** The OS user the server and its tools run as: uid/gid to switch to (root only), and their environment. */
export interface RunAs {
  uid?: number;
  gid?: number;
  env: NodeJS.ProcessEnv;
}

/**
 * PostgreSQL refuses to run as root, so when this process is root the server and its tools run
 * as the `postgres` OS user (created by the Debian server packages).
 */
export function serverUser(): RunAs {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
  delete env.PGDATA;
  delete env.PGPORT;
  delete env.PGHOST;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { env };
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    throw new PgferryError(
      'running as root, and there is no "postgres" OS user to start PostgreSQL as; install the PostgreSQL server package or run as a normal user',
    );
  }
  return { uid, gid, env: { ...env, HOME: '/tmp', USER: 'postgres' } };
}
