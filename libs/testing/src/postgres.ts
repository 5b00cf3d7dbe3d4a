import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  appendFileSync,
  existsSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { quoteIdent } from '@pgferry/pg';
import { freePort } from './free-port';
import { findPgBinDir, serverUser, type RunAs } from './pg-binaries';

const execFileP = promisify(execFile);

export interface StartPostgresOptions {
  /** wal_level = logical with room for slots and wal senders (default true). */
  logical?: boolean;
  /** Extra postgresql.conf settings, e.g. { max_connections: 50 }. */
  settings?: Record<string, string | number | boolean>;
  /** Use testcontainers even when local binaries exist (needs a Docker engine). */
  docker?: boolean;
}

export interface PgCluster {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The default database, `postgres`. */
  readonly database: string;
  /** 'local' (initdb + pg_ctl) or 'docker' (testcontainers). */
  readonly kind: 'local' | 'docker';
  readonly dataDir?: string;
  /** postgres://user:password@host:port/database */
  url(database?: string): string;
  /** A connected client; the caller ends it. */
  connect(database?: string): Promise<Client>;
  /** One statement on a fresh connection. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<R[]>;
  createDatabase(name: string): Promise<void>;
  /** The server log so far (local clusters), for failure messages. */
  log(): string;
  /** Stops the server and removes every file. Idempotent; never throws. */
  stop(): Promise<void>;
  /** Restarts the server (fast shutdown: sessions are cut), as an outage a task must ride out. */
  restart?(): Promise<void>;
}

const live = new Set<() => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crashed or interrupted test run must not leave servers and data directories behind.
  process.on('exit', () => {
    for (const kill of [...live]) kill();
  });
}

/**
 * Starts a throwaway PostgreSQL cluster on a free port: from the local server binaries (initdb +
 * pg_ctl, as the postgres OS user when this process is root), or through testcontainers when no
 * local binaries are found and a Docker engine answers. The superuser `postgres` has a random
 * password and TCP logins need it (scram-sha-256), so wrong-password cases can be tested.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PgCluster> {
  const bin = findPgBinDir();
  if (options.docker || bin === null) return startDocker(options, bin === null);
  let lastError: unknown;
  // The free port can be taken between probing and binding; retry on another.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startLocal(bin, options);
    } catch (err) {
      lastError = err;
      if (!/could not bind|address already in use|port/i.test(String((err as Error).message))) throw err;
    }
  }
  throw lastError;
}

/** Runs `fn` with a fresh cluster and always stops it, whatever `fn` does. */
export async function usingPostgres<T>(
  fn: (pg: PgCluster) => Promise<T>,
  options?: StartPostgresOptions,
): Promise<T> {
  const pg = await startPostgres(options);
  try {
    return await fn(pg);
  } finally {
    await pg.stop();
  }
}

function settingsText(options: StartPostgresOptions, port: number, socketDir: string): string {
  const logical = options.logical ?? true;
  const settings: Record<string, string | number | boolean> = {
    port,
    listen_addresses: '127.0.0.1',
    unix_socket_directories: socketDir,
    // Throwaway clusters: durability is not what tests measure.
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

async function startLocal(bin: string, options: StartPostgresOptions): Promise<PgCluster> {
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
      `\n# pgferry test fixture\n${settingsText(options, port, root)}\n`,
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
      throw new Error(`PostgreSQL did not start on port ${port}: ${(err as Error).message}\n${log}`);
    }
  } catch (err) {
    cleanup();
    live.delete(cleanup);
    throw err;
  }
  const cluster = makeCluster({ host: '127.0.0.1', port, password, kind: 'local', dataDir, logFile });
  return {
    ...cluster,
    async restart() {
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
    throw new Error(`${tool} failed: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

interface ClusterBase {
  host: string;
  port: number;
  password: string;
  kind: 'local' | 'docker';
  dataDir?: string;
  logFile?: string;
}

function makeCluster(base: ClusterBase): Omit<PgCluster, 'stop'> & { closeClients(): Promise<void> } {
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
    kind: base.kind,
    dataDir: base.dataDir,
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

async function startDocker(options: StartPostgresOptions, noLocal: boolean): Promise<PgCluster> {
  let mod: typeof import('@testcontainers/postgresql');
  try {
    mod = await import('@testcontainers/postgresql');
  } catch (err) {
    throw new Error(
      `no local PostgreSQL binaries and testcontainers is not installed: ${(err as Error).message}`,
    );
  }
  const password = randomBytes(12).toString('hex');
  const args = [
    '-c',
    `wal_level=${(options.logical ?? true) ? 'logical' : 'replica'}`,
    '-c',
    'max_replication_slots=20',
    '-c',
    'max_wal_senders=20',
    '-c',
    'fsync=off',
  ];
  for (const [k, v] of Object.entries(options.settings ?? {})) args.push('-c', `${k}=${v}`);
  let container: Awaited<ReturnType<InstanceType<typeof mod.PostgreSqlContainer>['start']>>;
  try {
    container = await new mod.PostgreSqlContainer('postgres:15')
      .withUsername('postgres')
      .withPassword(password)
      .withDatabase('postgres')
      .withCommand(['postgres', ...args])
      .start();
  } catch (err) {
    const why = noLocal
      ? 'no local PostgreSQL binaries (set PGFERRY_PG_BIN or install the server package) and '
      : '';
    throw new Error(`${why}could not start a PostgreSQL container: ${(err as Error).message}`);
  }
  const cluster = makeCluster({
    host: container.getHost(),
    port: container.getPort(),
    password,
    kind: 'docker',
  });
  let stopped = false;
  return {
    ...cluster,
    async stop() {
      if (stopped) return;
      stopped = true;
      await cluster.closeClients();
      await container.stop().catch(() => undefined);
    },
  };
}
