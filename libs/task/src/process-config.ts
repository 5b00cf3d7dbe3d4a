import { readFileSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  addKnownSecret,
  parseTaskSpec,
  registerSpecSecrets,
  SpecError,
  urlPassword,
  type TaskSpec,
} from '@pgferry/core';
import type { SelectedTable } from '@pgferry/pg';
import type { ApplierTarget, DeferredKeys } from '@pgferry/apply';
import type { KafkaConnection } from './kafka-client';

export type { KafkaConnection } from './kafka-client';

/**
 * What the controller decides once for each process of a phase. The same object configures the
 * process whether it runs as a child (written to its file with a KafkaConnection: ProcessConfig)
 * or inside the controller (given the controller's Kafka client); process-options.ts turns it
 * into the stage's options for both.
 */
interface CommonSettings {
  /** The whole task spec: the endpoints, with their passwords, come from here. */
  spec: TaskSpec;
  registryUrl: string;
  topicPrefix: string;
}

/** The snapshot part of the full-data phase (apps/capture). */
export interface CaptureSettings extends CommonSettings {
  role: 'capture';
  partitions: number;
  tables: SelectedTable[];
  /** The exported snapshot the controller keeps alive; null reads under fresh snapshots. */
  snapshotName: string | null;
}

/** The incremental phase's capture: stream the slot into the table topics (apps/capture). */
export interface StreamSettings extends CommonSettings {
  role: 'stream';
  partitions: number;
  tables: SelectedTable[];
}

/** The applier (apps/applier): the consumer group and where each topic's rows go. */
export interface ApplierSettings extends CommonSettings {
  role: 'applier';
  group: string;
  targets: ApplierTarget[];
  /**
   * snapshot (default): the full-data phase's bulk COPY path, snapshot rows only. changes: the
   * incremental phase, every record kind applied by key (PerKeyApplier).
   */
  mode?: 'snapshot' | 'changes';
  /** snapshot mode: the tables loaded before their key exists (see PgRowApplier). */
  deferredKeys?: DeferredKeys;
}

export type ProcessSettings = CaptureSettings | StreamSettings | ApplierSettings;

/** A child's configuration file: its settings and how it reaches Kafka. */
export type ProcessConfig = ProcessSettings & { kafka: KafkaConnection };
export type CaptureProcessConfig = CaptureSettings & { kafka: KafkaConnection };
export type StreamProcessConfig = StreamSettings & { kafka: KafkaConnection };
export type ApplierProcessConfig = ApplierSettings & { kafka: KafkaConnection };

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
  const spec = parseTaskSpec(raw.spec);
  // The child's log lines and errors mask these passwords wherever they appear.
  registerSpecSecrets({ ...spec, kafka: { ...spec.kafka, sasl: raw.kafka.sasl ?? spec.kafka.sasl } });
  addKnownSecret(urlPassword(raw.registryUrl));
  return { ...raw, spec } as Extract<ProcessConfig, { role: R }>;
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
