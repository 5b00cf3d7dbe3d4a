import { lookup } from 'node:dns/promises';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Endpoint } from '@pgferry/pg';

/** Variables passed through from our own environment: locale, paths, nothing libpq reads. */
const PASS_THROUGH = ['PATH', 'HOME', 'TMPDIR', 'TZ', 'SYSTEMROOT'];

export interface LibpqEnvOptions {
  /** A private directory (mode 0700) where PEM text from the spec is written as files for libpq. */
  secretsDir: string;
  /** Distinguishes the files of several endpoints in secretsDir ('source', 'destination'). */
  role: string;
  applicationName?: string;
  /** Session settings for the tool's connections, as PGOPTIONS ("-c name=value ..."). */
  pgOptions?: string;
}

/**
 * The complete environment for a libpq client tool connecting to `ep`: host, port, user and
 * database as PG* variables (so the command line carries no connection details at all, and a
 * database name containing "=" is not mistaken for a connection string), the password as
 * PGPASSWORD (never in argv, so never in `ps` output; never logged), TLS as PGSSLMODE,
 * PGSSLROOTCERT, PGSSLCERT and PGSSLKEY. Inherited PG* variables (PGSERVICE, PGOPTIONS ...) are
 * dropped so that nothing outside the spec changes the connection. Messages are forced to
 * English (LC_ALL=C.UTF-8) because errors are parsed.
 */
export async function libpqEnv(ep: Endpoint, options: LibpqEnvOptions): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {};
  for (const key of PASS_THROUGH) if (process.env[key] !== undefined) env[key] = process.env[key];
  env.LC_ALL = 'C.UTF-8';
  env.PGHOST = ep.host;
  env.PGPORT = String(ep.port);
  env.PGUSER = ep.user;
  env.PGDATABASE = ep.database;
  env.PGAPPNAME = options.applicationName ?? 'pgferry schema';
  env.PGCONNECT_TIMEOUT = '15';
  env.PGCLIENTENCODING = 'UTF8';
  if (options.pgOptions) env.PGOPTIONS = options.pgOptions;
  if (ep.password !== undefined && ep.password !== '') env.PGPASSWORD = ep.password;
  const ssl = ep.ssl;
  env.PGSSLMODE = ssl.mode;
  if (ssl.mode !== 'disable') {
    if (ssl.ca) env.PGSSLROOTCERT = pemFile(ssl.ca, options, 'ca.pem');
    if (ssl.cert) env.PGSSLCERT = pemFile(ssl.cert, options, 'cert.pem');
    if (ssl.key) env.PGSSLKEY = pemFile(ssl.key, options, 'key.pem');
    if (ssl.mode === 'verify-full' && ssl.serverName && ssl.serverName !== ep.host) {
      // libpq checks the certificate against PGHOST and connects to PGHOSTADDR when given.
      env.PGHOST = ssl.serverName;
      env.PGHOSTADDR = isIP(ep.host) ? ep.host : (await lookup(ep.host)).address;
    }
  }
  return env;
}

/** PEM text is written to a 0600 file (libpq wants files and refuses readable keys); paths pass. */
function pemFile(value: string, options: LibpqEnvOptions, name: string): string {
  if (!value.includes('-----BEGIN')) return value;
  mkdirSync(options.secretsDir, { recursive: true, mode: 0o700 });
  const file = join(options.secretsDir, `${options.role}-${name}`);
  writeFileSync(file, value, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

/** `--dbname` for pg_restore: an empty URI, so every connection parameter comes from libpqEnv. */
export const DBNAME_FROM_ENV = 'postgresql://';
