import { connect, resolveEndpoint } from '@pgferry/pg';
import { RegistryClient } from '../codec/registry-client';
import { ControlStore } from '../control/control-store';
import { runSnapshotCapture } from '../full-data/snapshot-capture';
import type { MigrationEvent } from './full-migration';
import { kafkaClient, type CaptureProcessConfig } from './process-config';

/**
 * The body of `apps/capture`: reads every pending chunk under the configured snapshot and sends
 * it to Kafka, checkpointing chunks in the destination's control schema. Safe to run again
 * after a crash: finished chunks are skipped, unfinished ones are sent again whole (the
 * applier's upsert absorbs what the killed attempt had sent).
 */
export async function runCaptureProcess(
  config: CaptureProcessConfig,
  emit: (e: MigrationEvent) => void,
): Promise<{ rows: number; bytes: number }> {
  const { spec } = config;
  const src = resolveEndpoint(spec.source, 'source');
  const dst = resolveEndpoint(spec.destination, 'destination');
  const control = await connect(dst, 'destination', { applicationName: 'pgferry capture' });
  try {
    const { rows, bytes } = await runSnapshotCapture({
      source: src,
      sourceDatabase: src.database,
      kafka: kafkaClient(config.kafka, `pgferry-${spec.name}-capture`),
      registry: new RegistryClient(config.registryUrl),
      topicPrefix: config.topicPrefix,
      partitions: config.partitions,
      tables: config.tables,
      control: new ControlStore(control, spec.name),
      snapshotName: config.snapshotName,
      chunkRows: spec.options.chunkRows,
      workers: spec.options.snapshotWorkers,
      onProgress: (p) => emit({ kind: 'captured', ...p }),
    });
    return { rows, bytes };
  } finally {
    await control.end().catch(() => undefined);
  }
}
