import { readFileSync, existsSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';
import { SpecError, type EndpointSpec, type SslSpec } from '@pgferry/core';

/** A fully resolved connection target. `password` never appears in `describe()`. */
export interface Endpoint {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  ssl: SslSpec;
}

const SSL_MODES = new Set(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']);

/**
 * Resolves an endpoint from the spec: the URL first (postgres:// or postgresql://, with the
 * libpq query options sslmode, sslrootcert, sslcert, sslkey), then the explicit fields over it.
 * `role` ('source' or 'destination') prefixes error paths.
 */
export function resolveEndpoint(spec: EndpointSpec, role: string): Endpoint {
  const ep: Endpoint = { host: '', port: 5432, database: '', user: '', ssl: { mode: 'prefer' } };
  if (spec.url !== undefined) {
    let url: URL;
    try {
      url = new URL(spec.url);
    } catch {
      throw new SpecError([
        `${role}.url: is not a valid URL (expected postgres://user:password@host:port/database)`,
      ]);
    }
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
      throw new SpecError([
        `${role}.url: scheme must be postgres:// or postgresql://, got ${url.protocol}//`,
      ]);
    }
    ep.host = decodeURIComponent(url.hostname).replace(/^\[(.*)\]$/, '$1');
    if (url.port) ep.port = Number(url.port);
    ep.database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    ep.user = decodeURIComponent(url.username);
    if (url.password) ep.password = decodeURIComponent(url.password);
    const q = url.searchParams;
    const mode = q.get('sslmode');
    if (mode !== null) {
      if (!SSL_MODES.has(mode)) {
        throw new SpecError([
          `${role}.url: sslmode must be one of ${[...SSL_MODES].join(', ')}, got "${mode}"`,
        ]);
      }
      ep.ssl = { ...ep.ssl, mode: mode as SslSpec['mode'] };
    }
    if (q.get('sslrootcert')) ep.ssl = { ...ep.ssl, ca: q.get('sslrootcert')! };
    if (q.get('sslcert')) ep.ssl = { ...ep.ssl, cert: q.get('sslcert')! };
    if (q.get('sslkey')) ep.ssl = { ...ep.ssl, key: q.get('sslkey')! };
    if (q.get('host') && !ep.host) ep.host = q.get('host')!;
  }
  if (spec.host !== undefined) ep.host = spec.host;
  if (spec.port !== undefined) ep.port = spec.port;
  if (spec.database !== undefined) ep.database = spec.database;
  if (spec.user !== undefined) ep.user = spec.user;
  if (spec.password !== undefined) ep.password = spec.password;
  if (spec.ssl !== undefined) ep.ssl = { ...ep.ssl, ...spec.ssl };
  const problems: string[] = [];
  if (!ep.host) problems.push(`${role}: host is required`);
  if (!ep.user) problems.push(`${role}: user is required`);
  if (!ep.database) ep.database = ep.user;
  if (problems.length) throw new SpecError(problems);
  return ep;
}

/** user@host:port/database, for messages and logs. Never includes the password. */
export function describeEndpoint(ep: Endpoint): string {
  const host = ep.host.includes(':') ? `[${ep.host}]` : ep.host;
  return `${ep.user}@${host}:${ep.port}/${ep.database}`;
}

/** PEM text is used as is; anything else is a file path. */
function pem(value: string, what: string): string {
  if (value.includes('-----BEGIN')) return value;
  if (!existsSync(value)) throw new SpecError([`ssl.${what}: file ${value} does not exist`]);
  return readFileSync(value, 'utf8');
}

/**
 * TLS options for node-postgres following libpq's sslmode semantics:
 * require encrypts without checking the certificate (unless a CA is given, as libpq does),
 * verify-ca checks the chain but not the host name, verify-full checks both.
 * 'prefer' is handled by the caller (try TLS, fall back to plain when the server has none).
 */
export function tlsOptions(ssl: SslSpec, host: string): false | ConnectionOptions {
  if (ssl.mode === 'disable') return false;
  const opts: ConnectionOptions = {};
  if (ssl.ca) opts.ca = pem(ssl.ca, 'ca');
  if (ssl.cert) opts.cert = pem(ssl.cert, 'cert');
  if (ssl.key) opts.key = pem(ssl.key, 'key');
  switch (ssl.mode) {
    case 'prefer':
    case 'require':
      opts.rejectUnauthorized = ssl.ca !== undefined && ssl.mode === 'require';
      if (opts.rejectUnauthorized) opts.checkServerIdentity = () => undefined;
      break;
    case 'verify-ca':
      opts.rejectUnauthorized = true;
      opts.checkServerIdentity = () => undefined;
      break;
    case 'verify-full':
      opts.rejectUnauthorized = true;
      opts.servername = ssl.serverName ?? host;
      break;
  }
  return opts;
}

export interface ClientConfigOptions {
  applicationName?: string;
  /** Force TLS off (used for the plain-text retry of sslmode=prefer). */
  plain?: boolean;
  connectTimeoutMs?: number;
  replication?: 'database';
}

/** Idle time before the first TCP keepalive probe of a connection (the client's side). */
export const KEEPALIVE_IDLE_MS = 10_000;

export function clientConfig(ep: Endpoint, options: ClientConfigOptions = {}): ClientConfig {
  const config: ClientConfig = {
    host: ep.host,
    port: ep.port,
    database: ep.database,
    user: ep.user,
    password: ep.password ?? '',
    application_name: options.applicationName ?? 'pgferry',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 15_000,
    ssl: options.plain ? false : tlsOptions(ep.ssl, ep.host),
    // TCP keepalive on every connection: a peer that vanished (a host down, a NAT or firewall
    // that dropped the flow) is noticed after about 10 s idle plus the kernel's probes, instead
    // of never, and the connection fails with ECONNRESET/ETIMEDOUT (a ConnectionError).
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
  };
  if (options.replication) (config as Record<string, unknown>).replication = options.replication;
  return config;
}
