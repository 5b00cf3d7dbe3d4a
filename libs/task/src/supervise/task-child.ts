import { join } from 'node:path';
import type { TaskSpec } from '@pgferry/core';
import type { KafkaConnection } from '../kafka-client';
import type { MigrationEvent } from '../migration-event';
import { CONFIG_ENV, writeProcessConfig, type ProcessSettings } from '../process-config';
import { ChildSupervisor, type PrestartedChildren } from './child-supervisor';

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
export function childConfigFile(dir: string, name: ProcessSettings['role'] | string): string {
  return join(dir, `${name}.json`);
}

/**
 * One supervised child of a task: `settings` and how the children reach Kafka written 0600 to
 * `file` (the caller removes it once the child is stopped: it holds passwords), restarted after
 * a lost connection within options.retry.connectionMinutes and any other crash within
 * options.retry.otherMinutes, its events and lifecycle passed to `emit`.
 */
export function superviseChild(
  spec: TaskSpec,
  processes: ChildProcessesOptions,
  emit: (e: MigrationEvent) => void,
  child: { name: string; entry: string; kind: 'job' | 'service'; file: string; settings: ProcessSettings },
): ChildSupervisor<MigrationEvent> {
  writeProcessConfig(child.file, { ...child.settings, kafka: processes.kafka });
  return new ChildSupervisor<MigrationEvent>({
    name: child.name,
    entry: child.entry,
    dir: processes.dir,
    env: { [CONFIG_ENV]: child.file },
    kind: child.kind,
    restart: {
      windowMs: spec.options.retry.otherMinutes * 60_000,
      connectionWindowMs: spec.options.retry.connectionMinutes * 60_000,
      initialDelayMs: processes.initialRestartDelayMs,
    },
    onEvent: emit,
    onLifecycle: (e) => emit({ kind: 'process', ...e }),
    prestarted: processes.prestarted,
  });
}
