import { parseTaskSpec, type TaskSpec, type TaskSpecInput } from '@pgferry/core';
import type { SelectedTable, ServerInfo } from '@pgferry/pg';
import {
  relKey,
  type DatabaseFacts,
  type DestinationFacts,
  type SourceFacts,
  type SourceTableFacts,
} from './precheck-facts';

/**
 * Plain facts for unit tests of the pure checks: a PostgreSQL 15 server where user "app" has
 * every privilege, and a table `public.t` with a primary key unless overridden. No I/O.
 */

export function specOf(input: Partial<TaskSpecInput> = {}): TaskSpec {
  return parseTaskSpec({
    name: 'orders',
    source: { host: 'src', user: 'app' },
    destination: { host: 'dst', user: 'app' },
    ...input,
  });
}

export function serverInfo(over: Partial<ServerInfo> = {}): ServerInfo {
  return {
    versionNum: 150004,
    major: 15,
    version: '15.4',
    walLevel: 'logical',
    maxReplicationSlots: 10,
    usedReplicationSlots: 0,
    maxWalSenders: 10,
    usedWalSenders: 0,
    isSuperuser: false,
    canReplicate: true,
    database: 'app',
    user: 'app',
    ...over,
  };
}

export function databaseFacts(over: Partial<DatabaseFacts> = {}): DatabaseFacts {
  return {
    database: 'app',
    databaseOid: 16384,
    startedAt: '2024-01-01 00:00:00+00',
    port: '5432',
    systemIdentifier: '7000000000000000001',
    encoding: 'UTF8',
    maxIdentifierLength: 63,
    inRecovery: false,
    canConnect: true,
    canCreate: true,
    canTemp: true,
    ...over,
  };
}

export function selected(schema: string, table: string, over: Partial<SelectedTable> = {}): SelectedTable {
  return {
    schema,
    table,
    primaryKey: ['id'],
    replicaIdentity: 'd',
    uniqueNotNullKey: [],
    estimatedRows: 0,
    bytes: 0,
    partitioned: false,
    targetSchema: schema,
    targetTable: table,
    ...over,
  };
}

export function tableFacts(over: Partial<SourceTableFacts> = {}): SourceTableFacts {
  return {
    owner: 'app',
    ownedByUser: true,
    canSelect: true,
    unlogged: false,
    generatedColumns: [],
    uniqueIndex: null,
    ownedSequences: [],
    ...over,
  };
}

/** Source facts for `tables`; `facts` overrides per table, keyed "schema.table". */
export function sourceFacts(
  tables: SelectedTable[],
  over: Partial<SourceFacts> = {},
  facts: Record<string, Partial<SourceTableFacts>> = {},
): SourceFacts {
  return {
    info: serverInfo(),
    db: databaseFacts(),
    selection: { tables, problems: [] },
    tables: new Map(
      tables.map((t) => [relKey(t.schema, t.table), tableFacts(facts[`${t.schema}.${t.table}`])]),
    ),
    schemaUsage: new Map(tables.map((t) => [t.schema, true])),
    largeObjects: 0,
    slot: null,
    ...over,
  };
}

export function destinationFacts(over: Partial<DestinationFacts> = {}): DestinationFacts {
  return {
    info: serverInfo(),
    db: databaseFacts({ startedAt: '2024-02-02 00:00:00+00', systemIdentifier: '7000000000000000002' }),
    canSetReplicationRole: true,
    schemas: new Map([['public', { owner: 'app', usage: true, create: true }]]),
    relations: new Map(),
    controlTask: null,
    ...over,
  };
}

export const ALL_TABLE_PRIVILEGES = {
  SELECT: true,
  INSERT: true,
  UPDATE: true,
  DELETE: true,
  TRUNCATE: true,
};
