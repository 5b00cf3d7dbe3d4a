import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { PgferryError, retry, RetryDeadlineError } from '@pgferry/core';
import { quoteIdent } from '../ident';
import { freePort } from './free-port';
import { findPgBinDir, serverUser, type RunAs } from './pg-binaries';

const execFileP = promisify(execFile);

export interface LocalClusterOptions {
  /** wal_level = logical with room for slots and wal senders (default true). */
  logical?: boolean;
  /** Extra postgresql.conf settings, e.g. { max_connections: 50 }. */
  settings?: Record<string, string | number | boolean>;
  /** The server binaries' directory (default: findPgBinDir()). */
  bin?: string;
}

/** A running throwaway server, reached over TCP as the superuser `postgres`. */
export interface ClusterHandle {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The default database, `postgres`. */
  readonly database: string;
  /** postgres://user:password@host:port/database */
  url(database?: string): string;
  /** A connected client; the caller ends it (stop ends those still open). */
  connect(database?: string): Promise<Client>;
  /** One statement on a fresh connection. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<R[]>;
  createDatabase(name: string): Promise<void>;
  /** The server log so far (empty when the server logs elsewhere), for failure messages. */
  log(): string;
}

/** A cluster of the local binaries (initdb + pg_ctl) in a temporary directory. */
export interface LocalCluster extends ClusterHandle {
  readonly kind: 'local';
  readonly dataDir: string;
  /** Stops the server and removes every file. Idempotent; never throws. */
  stop(): Promise<void>;
  /**
   * Restarts the server (fast shutdown: sessions are cut), as an outage a task must ride out;
   * with `downMs`, the server stays down (connections refused) that long before it starts again.
   */
  restart(options?: { downMs?: number }): Promise<void>;
}

const live = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted run must not leave servers and data directories behind.
  process.on('exit', () => {
    for (const kill of [...live]) kill();
  });
}

/**
 * Starts a throwaway PostgreSQL cluster on a free port from the local server binaries (initdb +
 * pg_ctl, as the postgres OS user when this process is root), for the demo and the tests. The
 * superuser `postgres` has a random password and TCP logins need it (scram-sha-256). Tuned for
 * speed, not durability (fsync off). The port can be taken between probing and binding: the
 * start is tried again on another, up to three times.
 */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const bin = options.bin ?? findPgBinDir();
  if (bin === null)
    throw new PgferryError(
      'no local PostgreSQL server binaries (initdb, pg_ctl): install the PostgreSQL server package, or set PGFERRY_PG_BIN to the directory that holds them',
    );
  // The server's own words for a port taken meanwhile (pg_ctl reports them from its log).
  const portTaken = (err: unknown) =>
    /could not bind|address already in use|port/i.test(String((err as Error)?.message));
  return retry(() => startOnce(bin, options), {
    deadlineMs: Infinity,
    maxAttempts: 3,
    initialDelayMs: 0,
    shouldRetry: portTaken,
  }).catch((err) => {
    throw err instanceof RetryDeadlineError ? err.cause : err;
  });
}

function settingsText(options: LocalClusterOptions, port: number, socketDir: string): string {
  const logical = options.logical ?? true;
  const settings: Record<string, string | number | boolean> = {
    port,
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    // Throwaway clusters: durability is not what they are for.
    fsync: 'off',
    full_page_writes: 'off',
    synchronous_commit: 'off',
    shared_buffers: '128MB',
    max_connections: 100,
    wal_level: logical ? 'logical' : 'replica',
    max_replication_slots: 20,
    max_wal_senders: 20,
    logging_collector: 'off',
    ...options.settings,
  };
  const quote = (v: string | number | boolean) =>
    typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : String(v);
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${quote(v)}`)
    .join('\n');
}

async function startOnce(bin: string, options: LocalClusterOptions): Promise<LocalCluster> {
  const runAs = serverUser();
  const root = mkdtempSync(join(tmpdir(), 'pgferry-pg-'));
  const dataDir = join(root, 'data');
  const logFile = join(root, 'server.log');
  const pwFile = join(root, 'pw');
  const password = randomBytes(12).toString('hex');
  const port = await freePort();
  let started = false;
  const cleanup = () => {
    if (started) {
      spawnSync(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], {
        ...spawnOpts(runAs),
        stdio: 'ignore',
      });
      started = false;
    }
    rmSync(root, { recursive: true, force: true });
  };
  live.add(cleanup);
  installExitHook();
  try {
    writeFileSync(pwFile, password);
    if (runAs.uid !== undefined) {
      chownSync(root, runAs.uid, runAs.gid!);
      chownSync(pwFile, runAs.uid, runAs.gid!);
    }
    chmodSync(root, 0o700);
    await run(
      bin,
      'initdb',
      [
        '-D',
        dataDir,
        '-U',
        'postgres',
        `--pwfile=${pwFile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--locale=C.UTF-8',
        '--no-sync',
      ],
      runAs,
    );
    appendFileSync(
      join(dataDir, 'postgresql.conf'),
      `\n# pgferry local cluster\n${settingsText(options, port, root)}\n`,
    );
    if (runAs.uid !== undefined) {
      writeFileSync(logFile, '');
      chownSync(logFile, runAs.uid, runAs.gid!);
    }
    started = true;
    try {
      await run(bin, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], runAs);
    } catch (err) {
      const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      throw new PgferryError(`PostgreSQL did not start on port ${port}: ${(err as Error).message}\n${log}`);
    }
  } catch (err) {
    cleanup();
    live.delete(cleanup);
    throw err;
  }
  const cluster = clusterHandle({ host: '127.0.0.1', port, password, logFile });
  return {
    ...cluster,
    kind: 'local',
    dataDir,
    async restart(options = {}) {
      if (options.downMs !== undefined) {
        await run(bin, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', '-t', '60', 'stop'], runAs);
        await new Promise((r) => setTimeout(r, options.downMs));
        await run(bin, 'pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], runAs);
        return;
      }
      await run(
        bin,
        'pg_ctl',
        ['-D', dataDir, '-l', logFile, '-m', 'fast', '-w', '-t', '60', 'restart'],
        runAs,
      );
    },
    async stop() {
      if (!live.has(cleanup)) return;
      live.delete(cleanup);
      await cluster.closeClients();
      if (started) {
        await run(bin, 'pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], runAs).catch(
          () => undefined,
        );
        started = false;
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function spawnOpts(runAs: RunAs) {
  return { uid: runAs.uid, gid: runAs.gid, env: runAs.env, cwd: '/tmp' };
}

async function run(bin: string, tool: string, args: string[], runAs: RunAs): Promise<void> {
  try {
    await execFileP(join(bin, tool), args, { ...spawnOpts(runAs), maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new PgferryError(`${tool} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

/**
 * The handle of a server reached as `postgres` with `password` (a local cluster, or a
 * container's in libs/testing). It keeps the clients it hands out; `closeClients` ends them.
 */
export function clusterHandle(base: {
  host: string;
  port: number;
  password: string;
  logFile?: string;
}): ClusterHandle & { closeClients(): Promise<void> } {
  const clients = new Set<Client>();
  const connect = async (database = 'postgres') => {
    const client = new Client({
      host: base.host,
      port: base.port,
      user: 'postgres',
      password: base.password,
      database,
    });
    client.on('error', () => undefined);
    await client.connect();
    clients.add(client);
    client.on('end', () => clients.delete(client));
    return client;
  };
  return {
    host: base.host,
    port: base.port,
    user: 'postgres',
    password: base.password,
    database: 'postgres',
    url: (database = 'postgres') =>
      `postgres://postgres:${encodeURIComponent(base.password)}@${base.host}:${base.port}/${encodeURIComponent(database)}`,
    connect,
    async query<R extends Record<string, unknown>>(sql: string, params?: unknown[], database?: string) {
      const client = await connect(database);
      try {
        return (await client.query(sql, params as unknown[])).rows as R[];
      } finally {
        await client.end();
      }
    },
    async createDatabase(name: string) {
      const client = await connect();
      try {
        await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
      } finally {
        await client.end();
      }
    },
    log: () => (base.logFile && existsSync(base.logFile) ? readFileSync(base.logFile, 'utf8') : ''),
    async closeClients() {
      await Promise.all([...clients].map((c) => c.end().catch(() => undefined)));
    },
  };
}
