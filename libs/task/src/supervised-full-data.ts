import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import type { TaskSpec } from '@pgferry/core';
import type { SelectedTable } from '@pgferry/pg';
import { readOffsets } from '@pgferry/control';
import type { DeferredKeys, ApplierTarget } from '@pgferry/apply';
import { ChildSupervisor, PrestartedChildren } from './supervise/child-supervisor';
import { withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import type { MigrationEvent } from './full-migration';
import { CONFIG_ENV, writeProcessConfig, type KafkaConnection, type ProcessConfig } from './process-config';

/** Runs capture and applier as child processes of the controller (see runFullMigration). */
export interface ChildProcessesOptions {
  /** The compiled entry modules of apps/capture and apps/applier. */
  captureEntry: string;
  applierEntry: string;
  /** The task's work dir: <name>.pid, <name>.log and the children's 0600 configuration files. */
  dir: string;
  /** How the children reach Kafka (the controller's own client cannot be handed over). */
  kafka: KafkaConnection;
  /** Restart backoff, for tests (defaults: 0.5 s doubling to 15 s). */
  initialRestartDelayMs?: number;
  /** Children forked ahead (prestartFullDataChildren): the phase's first starts take them over. */
  prestarted?: PrestartedChildren;
}

/** A child's configuration file (0600; it holds passwords, so it is removed once the child stops). */
const configFile = (dir: string, name: 'capture' | 'applier') => join(dir, `${name}.json`);

/**
 * Forks the full-data phase's capture and applier ahead of it, to load their modules while the
 * schema phase runs (see PrestartedChildren): about 0.5 s sooner to the first rows. Give the
 * set to the phase as processes.prestarted, and dispose of it once the task ends.
 */
export function prestartFullDataChildren(
  processes: Pick<ChildProcessesOptions, 'dir' | 'captureEntry' | 'applierEntry'>,
): PrestartedChildren {
  const { dir } = processes;
  return new PrestartedChildren(dir)
    .fork('applier', processes.applierEntry, { [CONFIG_ENV]: configFile(dir, 'applier') })
    .fork('capture', processes.captureEntry, { [CONFIG_ENV]: configFile(dir, 'capture') });
}

export interface SupervisedFullDataOptions {
  spec: TaskSpec;
  processes: ChildProcessesOptions;
  /** The controller's client: reads the topics' high watermarks. */
  kafka: KafkaClientConfig;
  registryUrl: string;
  topicPrefix: string;
  partitions: number;
  tables: SelectedTable[];
  snapshotName: string | null;
  group: string;
  targets: ApplierTarget[];
  /** The tables loaded before their key exists (see PgRowApplier). */
  deferredKeys: DeferredKeys;
  /** A destination connection of the controller: reads the applier's committed offsets. */
  control: Client;
  emit: (e: MigrationEvent) => void;
}

/**
 * How often the applied offsets are read once the capture is done: each read is one small query,
 * and the wait is added to the phase's end (the keys and verify follow).
 */
const POLL_MS = 50;

/**
 * The full-data phase with the capture and the applier in their own processes. The controller
 * keeps the exported snapshot alive (it holds the replication connection that created it), so
 * a restarted capture imports the same snapshot and re-sends only unfinished chunks. Completion
 * crosses the process boundary through durable state only: the capture is done when it exits 0
 * after reporting `done` (every chunk is marked done in pgferry.chunks), the applier is done
 * when the offsets it committed with the rows in pgferry.offsets reach every partition's high
 * watermark. Progress events come over IPC and are only for display.
 */
export async function runSupervisedFullData(opts: SupervisedFullDataOptions): Promise<void> {
  const { spec, processes } = opts;
  const common = {
    spec,
    kafka: processes.kafka,
    registryUrl: opts.registryUrl,
    topicPrefix: opts.topicPrefix,
  };
  const captureConfig = configFile(processes.dir, 'capture');
  const applierConfig = configFile(processes.dir, 'applier');
  const applier = superviseChild(spec, processes, opts.emit, {
    name: 'applier',
    entry: processes.applierEntry,
    kind: 'service',
    file: applierConfig,
    config: {
      ...common,
      role: 'applier',
      group: opts.group,
      targets: opts.targets,
      deferredKeys: opts.deferredKeys,
    },
  });
  const capture = superviseChild(spec, processes, opts.emit, {
    name: 'capture',
    entry: processes.captureEntry,
    kind: 'job',
    file: captureConfig,
    config: {
      ...common,
      role: 'capture',
      partitions: opts.partitions,
      tables: opts.tables,
      snapshotName: opts.snapshotName,
    },
  });
  try {
    applier.start();
    capture.start();
    // The applier never finishes on its own: its `finished` settles first only by failing.
    await Promise.race([capture.finished, applier.finished]);
    if (applier.failure) throw applier.failure;
    await waitForAppliedOffsets(opts, () => applier.failure);
  } finally {
    await Promise.all([capture.stop(), applier.stop()]);
    rmSync(captureConfig, { force: true });
    rmSync(applierConfig, { force: true });
  }
}

/**
 * One supervised child of a task: its configuration written 0600 to `file` (the caller removes
 * it once the child is stopped: it holds passwords), restarted after a crash within
 * options.retry.otherMinutes, its events and lifecycle passed to `emit`.
 */
export function superviseChild(
  spec: TaskSpec,
  processes: ChildProcessesOptions,
  emit: (e: MigrationEvent) => void,
  child: { name: string; entry: string; kind: 'job' | 'service'; file: string; config: ProcessConfig },
): ChildSupervisor<MigrationEvent> {
  writeProcessConfig(child.file, child.config);
  const supervisor = new ChildSupervisor<MigrationEvent>({
    name: child.name,
    entry: child.entry,
    dir: processes.dir,
    env: { [CONFIG_ENV]: child.file },
    kind: child.kind,
    restart: {
      windowMs: spec.options.retry.otherMinutes * 60_000,
      initialDelayMs: processes.initialRestartDelayMs,
    },
    onEvent: emit,
    onLifecycle: (e) => emit({ kind: 'process', ...e }),
    prestarted: processes.prestarted,
  });
  return supervisor;
}

/** Resolves once the destination's committed offsets reach every partition's current end. */
async function waitForAppliedOffsets(
  opts: SupervisedFullDataOptions,
  failure: () => Error | null,
): Promise<void> {
  const topics = opts.targets.map((t) => t.topic);
  const ends = await withKafkaAdmin(opts.kafka, (admin) => admin.topicEnds(topics));
  for (;;) {
    const err = failure();
    if (err) throw err;
    const applied = await readOffsets(opts.control, opts.group, topics);
    if ([...ends].every(([k, high]) => high === 0n || (applied.get(k) ?? 0n) >= high)) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
