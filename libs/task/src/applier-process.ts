import { SnapshotApplier, applyUntilStopped } from '@pgferry/apply';
import { kafkaClient, registryClient } from './kafka-client';
import type { Emit } from './migration-event';
import type { ApplierProcessConfig } from './process-config';
import { applierConnector, changeApplier, snapshotApplierOptions } from './process-options';

/**
 * The body of `apps/applier`: consumes the table topics and applies them until `stop` aborts,
 * then leaves the group. Fails when the applier fails (a record it cannot apply, a lost
 * destination connection); its offsets live in the destination, so a restart neither loses
 * nor repeats a row.
 */
export async function runApplierProcess(
  config: ApplierProcessConfig,
  emit: Emit,
  stop: AbortSignal,
): Promise<void> {
  const { spec } = config;
  const destination = await applierConnector(config)();
  const kafka = kafkaClient(config.kafka, `pgferry-${spec.name}-applier`);
  const registry = registryClient(spec, config.registryUrl);
  const applier =
    config.mode === 'changes'
      ? changeApplier(config, { kafka, registry, emit })
      : new SnapshotApplier(snapshotApplierOptions(config, { kafka, registry, emit, destination }));
  try {
    await applier.start();
    await applyUntilStopped(applier, stop);
  } finally {
    await applier.stop().catch(() => undefined);
    await destination.end().catch(() => undefined);
  }
}
