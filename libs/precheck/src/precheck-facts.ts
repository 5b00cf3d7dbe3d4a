import type { ServerInfo, Selection } from '@pgferry/pg';
import type { TablePrivilege } from './grant-statements';

/**
 * What the precheck read from the two servers. The checks (check-*.ts) are pure functions of
 * these facts and the task spec, so every rule is unit-testable without a server; the readers
 * (pg-*-facts.ts) fill them with read-only catalog queries.
 */

/** Map key of a (schema, name) pair; unambiguous for any names. */
export function relKey(schema: string, name: string): string {
  return JSON.stringify([schema, name]);
}

/** Who and where a session is: enough to tell two connections to the same database apart. */
export interface DatabaseFacts {
  database: string;
  databaseOid: number;
  /** pg_postmaster_start_time() as text: differs between any two running servers but by chance. */
  startedAt: string;
  port: string;
  /** pg_control_system().system_identifier, when the user may read it. */
  systemIdentifier: string | null;
  encoding: string;
  maxIdentifierLength: number;
  inRecovery: boolean;
  canConnect: boolean;
  canCreate: boolean;
  canTemp: boolean;
}

export interface OwnedSequence {
  schema: string;
  name: string;
  canSelect: boolean;
}

/** One selected source table, beyond what listTables reports. */
export interface SourceTableFacts {
  owner: string;
  /** The session user has the owner's rights: owner, member of the owner role, or superuser. */
  ownedByUser: boolean;
  canSelect: boolean;
  unlogged: boolean;
  generatedColumns: string[];
  /** The unique NOT NULL index behind TableInfo.uniqueNotNullKey, when there is one. */
  uniqueIndex: string | null;
  ownedSequences: OwnedSequence[];
}

export interface SlotFacts {
  name: string;
  /** 'logical' or 'physical'. */
  type: string;
  plugin: string | null;
  database: string | null;
  activePid: number | null;
  confirmedLsn: string | null;
  /** reserved, extended, unreserved or lost (PostgreSQL 13 and later; absent before). */
  walStatus?: string | null;
}

export interface SourceFacts {
  info: ServerInfo;
  db: DatabaseFacts;
  selection: Selection;
  /** By relKey(schema, table) of each selected table. */
  tables: Map<string, SourceTableFacts>;
  /** USAGE on each schema that holds a selected table. */
  schemaUsage: Map<string, boolean>;
  largeObjects: number;
  /** The slot named pgferry_<task name>, when it exists. */
  slot: SlotFacts | null;
}

export interface DestinationSchemaFacts {
  owner: string;
  usage: boolean;
  create: boolean;
}

export interface DestinationRelationFacts {
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, i index, S sequence, f foreign table ... */
  kind: string;
  /** For tables only; every privilege false for other kinds. */
  privileges: Record<TablePrivilege, boolean>;
}

export interface DestinationFacts {
  info: ServerInfo;
  db: DatabaseFacts;
  /** SET session_replication_role (superuser, or PostgreSQL 15+ GRANT SET ON PARAMETER). */
  canSetReplicationRole: boolean;
  /** Target schemas and the control schema, by name; absent schemas are not in the map. */
  schemas: Map<string, DestinationSchemaFacts>;
  /** Existing relations named like a target table or a control table, by relKey. */
  relations: Map<string, DestinationRelationFacts>;
  /**
   * This task's row in pgferry.tasks: null when there is none; undefined when the control table
   * exists but this user cannot read it.
   */
  controlTask: { slotName: string | null } | null | undefined;
}

/** The control schema on the destination (libs/pipeline CONTROL_SCHEMA) and its tables. */
export const CONTROL_SCHEMA = 'pgferry';
export const CONTROL_TABLES: readonly string[] = ['tasks', 'phases', 'chunks', 'offsets'];

/** The replication slot a task streams from (libs/pipeline full-migration). */
export function taskSlotName(taskName: string): string {
  return `pgferry_${taskName}`;
}
