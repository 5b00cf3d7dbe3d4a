import type { Client } from 'pg';
import { classifyPgError } from './classify';
import { quoteIdent } from './ident';

export interface ServerInfo {
  /** e.g. 150018 */
  versionNum: number;
  major: number;
  version: string;
  walLevel: string;
  maxReplicationSlots: number;
  usedReplicationSlots: number;
  maxWalSenders: number;
  usedWalSenders: number;
  isSuperuser: boolean;
  canReplicate: boolean;
  database: string;
  user: string;
}

/** One round trip: the version, the settings and the role attributes logical migration depends on. */
export async function readServerInfo(client: Client, context: string): Promise<ServerInfo> {
  try {
    const { rows } = await client.query(`
      SELECT current_setting('server_version_num')::int AS version_num,
             current_setting('server_version') AS version,
             current_setting('wal_level') AS wal_level,
             current_setting('max_replication_slots')::int AS max_slots,
             (SELECT count(*)::int FROM pg_replication_slots) AS used_slots,
             current_setting('max_wal_senders')::int AS max_senders,
             (SELECT count(*)::int FROM pg_stat_replication) AS used_senders,
             r.rolsuper AS is_superuser,
             r.rolreplication OR r.rolsuper AS can_replicate,
             current_database() AS database,
             current_user AS "user"
        FROM pg_roles r WHERE r.rolname = current_user`);
    const r = rows[0];
    return {
      versionNum: r.version_num,
      major: Math.floor(r.version_num / 10000),
      version: r.version,
      walLevel: r.wal_level,
      maxReplicationSlots: r.max_slots,
      usedReplicationSlots: r.used_slots,
      maxWalSenders: r.max_senders,
      usedWalSenders: r.used_senders,
      isSuperuser: r.is_superuser,
      canReplicate: r.can_replicate,
      database: r.database,
      user: r.user,
    };
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

export interface ReadinessIssue {
  item: string;
  level: 'failed' | 'alert';
  message: string;
}

/** What keeps this server from being the source of a logical (incremental) migration. */
export function logicalSourceIssues(info: ServerInfo, serverName: string): ReadinessIssue[] {
  const issues: ReadinessIssue[] = [];
  if (info.major < 10) {
    issues.push({
      item: 'version',
      level: 'failed',
      message: `${serverName} runs PostgreSQL ${info.version}; logical decoding with pgoutput needs 10 or later`,
    });
  }
  if (info.walLevel !== 'logical') {
    issues.push({
      item: 'wal_level',
      level: 'failed',
      message: `${serverName} has wal_level = ${info.walLevel}; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server`,
    });
  }
  if (info.maxReplicationSlots - info.usedReplicationSlots < 1) {
    issues.push({
      item: 'replication slots',
      level: 'failed',
      message: `${serverName} uses ${info.usedReplicationSlots} of max_replication_slots = ${info.maxReplicationSlots}; raise max_replication_slots or drop an unused slot`,
    });
  }
  if (info.maxWalSenders - info.usedWalSenders < 1) {
    issues.push({
      item: 'wal senders',
      level: 'failed',
      message: `${serverName} uses ${info.usedWalSenders} of max_wal_senders = ${info.maxWalSenders}; raise max_wal_senders`,
    });
  }
  if (!info.canReplicate) {
    issues.push({
      item: 'replication privilege',
      level: 'failed',
      message: `${serverName}: user ${info.user} has no REPLICATION attribute; run ALTER ROLE ${quoteIdent(info.user)} REPLICATION as a superuser`,
    });
  }
  return issues;
}

/**
 * The maintenance_work_mem to set ("256MB") so that index builds on this connection's server
 * sort in `mb` MB, or undefined when its own setting (for this user and database) is not lower,
 * or `mb` is 0: a setting is raised, never lowered.
 */
export async function maintenanceMemoryToRaise(
  client: Client,
  mb: number | undefined,
  context: string,
): Promise<string | undefined> {
  if (!mb || mb <= 0) return undefined;
  try {
    const { rows } = await client.query(
      `SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem')) < $1::bigint * 1048576 AS raise`,
      [mb],
    );
    return rows[0].raise ? `${Math.trunc(mb)}MB` : undefined;
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

/**
 * Which PostgreSQL cluster and database this is: the cluster's system identifier (the one
 * IDENTIFY_SYSTEM gives, set by initdb; a restored base backup keeps it, pg_dump into a new
 * cluster does not) and the database name. Read-only, no privilege needed.
 */
export async function readSourceIdentity(
  client: Pick<Client, 'query'>,
): Promise<{ systemId: string; database: string }> {
  try {
    const { rows } = await client.query(
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_id, current_database() AS database`,
    );
    return { systemId: rows[0].system_id, database: rows[0].database };
  } catch (err) {
    throw classifyPgError(err, 'reading the source system identifier');
  }
}
