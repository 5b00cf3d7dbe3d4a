import type { RegistryClient } from '@pgferry/avro';
import type { ControlStore } from '@pgferry/control';
import { runSnapshotCapture } from '@pgferry/capture';
import { SnapshotApplier } from '@pgferry/apply';
import { topicEnds, type KafkaClient } from '../kafka-client';
import type { Emit } from '../migration-event';
import type { ApplierSettings, CaptureSettings } from '../process-config';
import { applierConnector, snapshotApplierOptions, snapshotCaptureOptions } from '../process-options';

export interface FullDataInProcessOptions {
  capture: CaptureSettings;
  applier: ApplierSettings;
  /** The controller's clients, shared by the capture and the applier. */
  kafka: KafkaClient;
  registry: RegistryClient;
  /** The controller's control records: the capture checkpoints its chunks there. */
  store: ControlStore;
  emit: Emit;
}

const POLL_MS = 100;

/**
 * The full-data phase with the capture and the applier inside the controller, configured as
 * the children would be (process-options.ts). Returns the rows this run captured, once the
 * destination holds every record the capture sent.
 */
export async function runFullDataInProcess(opts: FullDataInProcessOptions): Promise<number> {
  const clients = { kafka: opts.kafka, registry: opts.registry, emit: opts.emit };
  const destination = await applierConnector(opts.applier)();
  const applier = new SnapshotApplier(snapshotApplierOptions(opts.applier, { ...clients, destination }));
  try {
    await applier.start();
    const captured = await runSnapshotCapture(
      snapshotCaptureOptions(opts.capture, { ...clients, control: opts.store }),
    );
    await waitForApplier(
      opts.kafka,
      applier,
      opts.applier.targets.map((t) => t.topic),
    );
    return captured.rows;
  } finally {
    await applier.stop().catch(() => undefined);
    await destination.end().catch(() => undefined);
  }
}

/** Resolves once the destination holds every record that is in the topics now. */
async function waitForApplier(kafka: KafkaClient, applier: SnapshotApplier, topics: string[]): Promise<void> {
  const ends = await topicEnds(kafka, topics);
  for (;;) {
    if (applier.error) throw applier.error;
    const behind = [...ends].filter(([k, high]) => high > 0n && (applier.positions.get(k) ?? 0n) < high);
    if (behind.length === 0) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
