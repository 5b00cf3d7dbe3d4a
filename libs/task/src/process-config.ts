import { readFileSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseTaskSpec, PgferryError, SpecError, type TaskSpec } from '@pgferry/core';
import type { SelectedTable } from '@pgferry/pg';
import type { ApplierTarget, DeferredKeys } from '@pgferry/apply';
import type { KafkaClientConfig } from '@pgferry/kafka';

/** How a child reaches Kafka: the brokers and, for a secured cluster, TLS and SASL. */
export interface KafkaConnection {
  brokers: string[];
  ssl?: boolean;
  sasl?: TaskSpec['kafka']['sasl'];
}

interface CommonConfig {
  /** The whole task spec: the endpoints, with their passwords, come from here. */
  spec: TaskSpec;
  kafka: KafkaConnection;
  registryUrl: string;
  topicPrefix: string;
}

/** What `apps/capture` needs for the snapshot part of the full-data phase. */
export interface CaptureProcessConfig extends CommonConfig {
  role: 'capture';
  partitions: number;
  tables: SelectedTable[];
  /** The exported snapshot the controller keeps alive; null reads under fresh snapshots. */
  snapshotName: string | null;
}

/** What `apps/capture` needs for the incremental phase: stream the slot into the table topics. */
export interface StreamProcessConfig extends CommonConfig {
  role: 'stream';
  partitions: number;
  tables: SelectedTable[];
}

/** What `apps/applier` needs: the consumer group and where each topic's rows go. */
export interface ApplierProcessConfig extends CommonConfig {
  role: 'applier';
  group: string;
  targets: ApplierTarget[];
  /**
   * snapshot (default): the full-data phase's bulk COPY path, snapshot rows only. changes: the
   * incremental phase, every record kind applied by key (TopicApplier).
   */
  mode?: 'snapshot' | 'changes';
  /** snapshot mode: the tables loaded before their key exists (see PgRowApplier). */
  deferredKeys?: DeferredKeys;
}

export type ProcessConfig = CaptureProcessConfig | StreamProcessConfig | ApplierProcessConfig;

/** The environment variable that names a child's configuration file. */
export const CONFIG_ENV = 'PGFERRY_CONFIG';

/**
 * Writes a child's configuration where only the controller's user can read it (0600): it holds
 * passwords, which must never travel on a command line where `ps` shows them.
 */
export function writeProcessConfig(file: string, config: ProcessConfig): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** Reads and validates a configuration written by writeProcessConfig; errors name the file. */
export function readProcessConfig<R extends ProcessConfig['role']>(
  file: string | undefined,
  role: R,
): Extract<ProcessConfig, { role: R }> {
  if (!file) throw new SpecError([`${CONFIG_ENV} must name the ${role}'s configuration file`]);
  let raw: ProcessConfig;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new SpecError([`cannot read the ${role} configuration ${file}: ${(err as Error).message}`], {
      cause: err,
    });
  }
  if (raw?.role !== role)
    throw new SpecError([`${file} configures a ${String(raw?.role)} process, not a ${role}`]);
  if (!raw.kafka?.brokers?.length || !raw.registryUrl || !raw.topicPrefix)
    throw new SpecError([`${file}: kafka.brokers, registryUrl and topicPrefix are required`]);
  return { ...raw, spec: parseTaskSpec(raw.spec) } as Extract<ProcessConfig, { role: R }>;
}

/** The role a configuration file is written for, for a process that can play several. */
export function processRole(file: string | undefined): ProcessConfig['role'] | undefined {
  if (!file) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as ProcessConfig)?.role;
  } catch {
    return undefined; // readProcessConfig reports what is wrong with the file
  }
}

/** The Kafka client configuration of one process (its client id names the process to Kafka). */
export function kafkaConfig(conn: KafkaConnection, clientId: string): KafkaClientConfig {
  if (!conn.brokers.length) throw new PgferryError('no Kafka brokers given');
  return { clientId, brokers: conn.brokers, tls: conn.ssl || null, sasl: conn.sasl ?? null };
}
