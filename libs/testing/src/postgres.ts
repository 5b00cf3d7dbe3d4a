import { randomBytes } from 'node:crypto';
import { clusterHandle, findPgBinDir, startLocalCluster, type ClusterHandle } from '@pgferry/pg';

export interface StartPostgresOptions {
  /** wal_level = logical with room for slots and wal senders (default true). */
  logical?: boolean;
  /** Extra postgresql.conf settings, e.g. { max_connections: 50 }. */
  settings?: Record<string, string | number | boolean>;
  /** Use testcontainers even when local binaries exist (needs a Docker engine). */
  docker?: boolean;
}

export interface PgCluster extends ClusterHandle {
  /** 'local' (initdb + pg_ctl) or 'docker' (testcontainers). */
  readonly kind: 'local' | 'docker';
  readonly dataDir?: string;
  /** Stops the server and removes every file. Idempotent; never throws. */
  stop(): Promise<void>;
  /**
   * Restarts the server (fast shutdown: sessions are cut), as an outage a task must ride out;
   * with `downMs` it stays down that long first.
   */
  restart?(options?: { downMs?: number }): Promise<void>;
}

/**
 * Starts a throwaway PostgreSQL cluster on a free port: from the local server binaries
 * (startLocalCluster in @pgferry/pg: initdb + pg_ctl, as the postgres OS user when this process
 * is root), or through testcontainers when no local binaries are found and a Docker engine
 * answers. The superuser `postgres` has a random password and TCP logins need it
 * (scram-sha-256), so wrong-password cases can be tested.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PgCluster> {
  const bin = findPgBinDir();
  if (options.docker || bin === null) return startDocker(options, bin === null);
  return startLocalCluster({ logical: options.logical, settings: options.settings, bin });
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
  const cluster = clusterHandle({ host: container.getHost(), port: container.getPort(), password });
  let stopped = false;
  return {
    ...cluster,
    kind: 'docker',
    async stop() {
      if (stopped) return;
      stopped = true;
      await cluster.closeClients();
      await container.stop().catch(() => undefined);
    },
  };
}
