import { rmSync } from 'node:fs';
import type { Client } from 'pg';
import type { TaskSpec } from '@pgferry/core';
import { readOffsets } from '@pgferry/control';
import { topicEnds, type KafkaClient } from '../kafka-client';
import type { Emit } from '../migration-event';
import { CONFIG_ENV, type ApplierSettings, type CaptureSettings } from '../process-config';
import { PrestartedChildren } from '../supervise/child-supervisor';
import { childConfigFile, superviseChild, type ChildProcessesOptions } from '../supervise/task-child';

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
    .fork('applier', processes.applierEntry, { [CONFIG_ENV]: childConfigFile(dir, 'applier') })
    .fork('capture', processes.captureEntry, { [CONFIG_ENV]: childConfigFile(dir, 'capture') });
}

export interface FullDataChildrenOptions {
  spec: TaskSpec;
  processes: ChildProcessesOptions;
  capture: CaptureSettings;
  applier: ApplierSettings;
  /** The controller's client: reads the topics' high watermarks. */
  kafka: KafkaClient;
  /** A destination connection of the controller: reads the applier's committed offsets. */
  control: Client;
  emit: Emit;
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
export async function runFullDataChildren(opts: FullDataChildrenOptions): Promise<void> {
  const { spec, processes } = opts;
  const captureConfig = childConfigFile(processes.dir, 'capture');
  const applierConfig = childConfigFile(processes.dir, 'applier');
  const applier = superviseChild(spec, processes, opts.emit, {
    name: 'applier',
    entry: processes.applierEntry,
    kind: 'service',
    file: applierConfig,
    settings: opts.applier,
  });
  const capture = superviseChild(spec, processes, opts.emit, {
    name: 'capture',
    entry: processes.captureEntry,
    kind: 'job',
    file: captureConfig,
    settings: opts.capture,
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

/** Resolves once the destination's committed offsets reach every partition's current end. */
async function waitForAppliedOffsets(
  opts: FullDataChildrenOptions,
  failure: () => Error | null,
): Promise<void> {
  const { group, targets } = opts.applier;
  const topics = targets.map((t) => t.topic);
  const ends = await topicEnds(opts.kafka, topics);
  for (;;) {
    const err = failure();
    if (err) throw err;
    const applied = await readOffsets(opts.control, group, topics);
    if ([...ends].every(([k, high]) => high === 0n || (applied.get(k) ?? 0n) >= high)) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
