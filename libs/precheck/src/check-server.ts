import type { TaskSpec } from '@pgferry/core';
import { quoteIdent, quoteLiteral, quoteQualified, logicalSourceIssues } from '@pgferry/pg';
import { dropReplicationSlot } from './grant-statements';
import type { DatabaseFacts, DestinationFacts, SourceFacts } from './precheck-facts';
import { CONTROL_SCHEMA, taskSlotName } from './precheck-facts';
import type { PrecheckItem } from './precheck-report';

/** Server-level checks: same database, versions, logical decoding, the task's slot, encodings. Pure. */

/** True when the task takes a snapshot through a replication slot or streams from one. */
export function needsSlot(spec: TaskSpec): boolean {
  return spec.migrationTypes.full || spec.migrationTypes.incremental;
}

/**
 * Two sessions are on the same database when the server start time, port, database oid and name
 * agree (and the system identifiers, when both are readable). A physical standby shares the
 * system identifier with its primary but not its start time, so it is not "the same".
 */
export function sameDatabase(a: DatabaseFacts, b: DatabaseFacts): boolean {
  if (a.systemIdentifier && b.systemIdentifier && a.systemIdentifier !== b.systemIdentifier) return false;
  return (
    a.startedAt === b.startedAt &&
    a.port === b.port &&
    a.databaseOid === b.databaseOid &&
    a.database === b.database
  );
}

export function checkSameDatabase(
  source: DatabaseFacts,
  destination: DatabaseFacts,
  destinationName: string,
): PrecheckItem {
  const base = { id: 'same-database', name: 'same database' };
  return sameDatabase(source, destination)
    ? {
        ...base,
        level: 'failed',
        object: destinationName,
        message: `source and destination are the same database (${destinationName}); point the destination at another database or server`,
        fix: 'change destination (url, host, port or database) in the task spec',
      }
    : { ...base, level: 'passed', message: 'source and destination are different databases' };
}

/** Messages as runBasicChecks words them. */
export function checkVersions(source: SourceFacts, destination: DestinationFacts): PrecheckItem {
  const [si, di] = [source.info, destination.info];
  return di.major >= si.major
    ? {
        id: 'versions',
        name: 'versions',
        level: 'passed',
        message: `source PostgreSQL ${si.version}, destination PostgreSQL ${di.version}`,
      }
    : {
        id: 'versions',
        name: 'versions',
        level: 'failed',
        message: `destination runs PostgreSQL ${di.version}, older than the source's ${si.version}; use a destination of major version ${si.major} or later`,
        fix: `use a destination running PostgreSQL ${si.major} or later`,
      };
}

const LOGICAL_IDS: Record<string, string> = {
  version: 'logical:version',
  wal_level: 'logical:wal_level',
  'replication slots': 'logical:slots',
  'wal senders': 'logical:wal_senders',
  'replication privilege': 'logical:replication',
};

/**
 * Logical decoding on the source, needed whenever a slot is (full data takes its snapshot from
 * the slot it creates; incremental streams from it). A slot pgferry_<name> that already exists
 * needs no free slot. Messages are those of logicalSourceIssues.
 */
export function checkLogicalDecoding(spec: TaskSpec, source: SourceFacts): PrecheckItem[] {
  if (!needsSlot(spec)) return [];
  const si = source.info;
  const fixes: Record<string, string> = {
    version: 'use a source running PostgreSQL 10 or later',
    wal_level: 'ALTER SYSTEM SET wal_level = logical;\n-- then restart the server',
    'replication slots': `ALTER SYSTEM SET max_replication_slots = ${si.usedReplicationSlots + 1};\n-- then restart the server`,
    'wal senders': `ALTER SYSTEM SET max_wal_senders = ${si.usedWalSenders + 1};\n-- then restart the server`,
    'replication privilege': `ALTER ROLE ${quoteIdent(si.user)} REPLICATION;`,
  };
  const items: PrecheckItem[] = logicalSourceIssues(si, 'source')
    .filter((i) => !(i.item === 'replication slots' && source.slot !== null))
    .map((i) => ({
      id: LOGICAL_IDS[i.item] ?? `logical:${i.item}`,
      name: i.item,
      level: i.level,
      object: i.item === 'replication privilege' ? quoteIdent(si.user) : undefined,
      message: i.message,
      fix: fixes[i.item],
    }));
  if (source.db.inRecovery && si.major < 16) {
    items.push({
      id: 'logical:standby',
      name: 'logical decoding',
      level: 'failed',
      message: `source is a standby in recovery running PostgreSQL ${si.version}; logical decoding on a standby needs PostgreSQL 16 or later: point the source at the primary`,
      fix: 'point source at the primary server in the task spec',
    });
  }
  if (items.length === 0) {
    items.push({
      id: 'logical',
      name: 'logical decoding',
      level: 'passed',
      message: 'wal_level = logical, a free slot and wal sender, REPLICATION privilege',
    });
  }
  return items;
}

/**
 * The slot pgferry_<name>. A run of this task records its slot in the destination's
 * pgferry.tasks and resumes from it; the snapshot step creates the slot only when no slot is
 * recorded, and that creation fails when a slot of the name exists. Hence: recorded and idle is
 * an alert (the task resumes from it); existing but unrecorded, in use, physical, of another
 * plugin or of another database is failed.
 */
export function checkTaskSlot(
  spec: TaskSpec,
  source: SourceFacts,
  destination: DestinationFacts,
): PrecheckItem | null {
  if (!needsSlot(spec)) return null;
  const name = taskSlotName(spec.name);
  const base = { id: `slot:${name}`, name: 'replication slot', object: name };
  const slot = source.slot;
  const drop = dropReplicationSlot(name);
  const dropInProse = drop.replace(/;$/, '');
  const controlTasks = quoteQualified(CONTROL_SCHEMA, 'tasks');
  if (!slot)
    return {
      ...base,
      level: 'passed',
      message: `replication slot ${name} does not exist yet; the task creates it with its snapshot`,
    };
  const failed = (why: string, fix: string): PrecheckItem => ({
    ...base,
    level: 'failed',
    message: `replication slot ${name} already exists on the source ${why}`,
    fix,
  });
  if (slot.activePid !== null)
    return failed(
      `and is in use by process ${slot.activePid}: another pgferry task of this name (or another consumer) streams from it; stop that process, or give this task another name`,
      'stop the process using the slot, or change name in the task spec',
    );
  if (slot.type !== 'logical' || slot.plugin !== 'pgoutput' || slot.database !== source.db.database) {
    const what =
      slot.type !== 'logical'
        ? 'but is a physical slot'
        : slot.plugin !== 'pgoutput'
          ? `but decodes with ${slot.plugin ?? 'no plugin'}, not pgoutput`
          : `but belongs to database ${quoteIdent(slot.database ?? '')}`;
    return failed(
      `${what}, so the task cannot use it; drop it with ${dropInProse} if nothing needs it, or give this task another name`,
      drop,
    );
  }
  if (destination.controlTask?.slotName === name && slot.walStatus === 'lost')
    return failed(
      `and the destination records it for task ${spec.name}, but the source invalidated it (wal_status lost): it removed WAL the slot still needed, past max_slot_wal_keep_size, so the changes since the destination's position are gone and the task cannot resume; start over: pgferry release (drops the slot and the task's objects on the source), then on the destination delete the task from ${controlTasks} and drop the task's tables, raise max_slot_wal_keep_size (or keep the capture running) and run pgferry migrate again`,
      `pgferry release --name ${spec.name}   # then, on the destination:\nDELETE FROM ${controlTasks} WHERE task = ${quoteLiteral(spec.name)};`,
    );
  if (destination.controlTask?.slotName === name)
    return {
      ...base,
      level: 'passed',
      message: `replication slot ${name} already exists on the source and the destination records it for task ${spec.name} (an earlier run): the task resumes with it instead of creating a new slot and snapshot${spec.migrationTypes.incremental ? `, and streams the changes after its confirmed position ${slot.confirmedLsn ?? '(none yet)'}` : ''}; to start over instead, drop the slot with ${dropInProse} and delete the task from ${controlTasks} on the destination`,
      fix: `nothing to do to resume; to start over instead:\n${drop} -- on the source\nDELETE FROM ${controlTasks} WHERE task = ${quoteLiteral(spec.name)}; -- on the destination`,
    };
  return failed(
    `but no task ${spec.name} on this destination records it: it belongs to a task of the same name that migrates to another destination, or to a run whose control schema was dropped, and the snapshot cannot be taken from an existing slot; if nothing uses it, drop it with ${dropInProse}, otherwise give this task another name`,
    drop,
  );
}

/** Text the destination's encoding cannot represent fails to apply. */
export function checkEncoding(source: SourceFacts, destination: DestinationFacts): PrecheckItem {
  const [s, d] = [source.db.encoding, destination.db.encoding];
  const base = { id: 'encoding', name: 'encoding' };
  if (s === d || d === 'UTF8')
    return { ...base, level: 'passed', message: `source encoding ${s}, destination encoding ${d}` };
  return {
    ...base,
    level: 'alert',
    object: quoteIdent(destination.db.database),
    message: `source database encoding ${s} differs from the destination's ${d}: rows and names holding characters that ${d} cannot represent fail to apply; create the destination database with ENCODING 'UTF8' (or '${s}')`,
    fix: `CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0; -- and point destination at it`,
  };
}

/** A destination in recovery is read-only; nothing can be applied to it. */
export function checkDestinationWritable(
  destination: DestinationFacts,
  destinationName: string,
): PrecheckItem | null {
  if (!destination.db.inRecovery) return null;
  return {
    id: 'privileges:destination:recovery',
    name: 'destination privileges',
    level: 'failed',
    object: destinationName,
    message: `destination ${destinationName} is a standby in recovery and accepts no writes; point the destination at a primary`,
    fix: 'point destination at a primary server in the task spec',
  };
}

/**
 * Incremental migration carries DDL with an event trigger on the source, which only a superuser
 * may create. Without one the task can still stream, if the user accepts applying schema changes
 * on the destination first: an alert, not a failure. Null when the task has no incremental phase.
 */
export function checkDdlCapture(spec: TaskSpec, source: SourceFacts): PrecheckItem | null {
  if (!spec.migrationTypes.incremental) return null;
  const base = { id: 'ddl-capture', name: 'DDL capture' };
  const user = quoteIdent(source.info.user);
  if (source.info.isSuperuser)
    return {
      ...base,
      level: 'passed',
      message: `source user ${user} is a superuser: the task installs an event trigger that carries schema changes on the selected schemas to the destination, in order with the data`,
    };
  return {
    ...base,
    level: 'alert',
    object: user,
    message: `source user ${user} is not a superuser, so the task cannot install its event trigger: schema changes made on the source during the incremental phase (ALTER TABLE, CREATE TABLE ...) are not carried to the destination, and the first change in a new shape stops the task; run the task as a superuser, or acknowledge this and make each schema change on the destination before the source`,
    fix: `ALTER ROLE ${user} SUPERUSER; -- or acknowledge, and change the destination's schema first`,
  };
}
