import { connect, resolveEndpoint } from '@pgferry/pg';
import { RegistryClient } from '@pgferry/avro';
import { ControlStore } from '@pgferry/control';
import { runSnapshotCapture, runStreamCapture } from '@pgferry/capture';
import type { MigrationEvent } from './full-migration';
import { kafkaConfig, type CaptureProcessConfig, type StreamProcessConfig } from './process-config';

/**
 * The body of `apps/capture`: reads every pending chunk under the configured snapshot and sends
 * it to Kafka, checkpointing chunks in the destination's control schema. Safe to run again
 * after a crash: finished chunks are skipped, unfinished ones are sent again whole (their new
 * attempt is recorded before any of their rows is sent, so the applier gives a table still
 * without its key the key first, and its upsert absorbs what the killed attempt had sent).
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
      kafka: kafkaConfig(config.kafka, `pgferry-${spec.name}-capture`),
      registry: new RegistryClient(config.registryUrl),
      topicPrefix: config.topicPrefix,
      partitions: config.partitions,
      tables: config.tables,
      control: new ControlStore(control, spec.name),
      snapshotName: config.snapshotName,
      chunkRows: spec.options.chunkRows,
      workers: spec.options.snapshotWorkers,
      compression: spec.options.snapshotCompression,
      onProgress: (p) => emit({ kind: 'captured', ...p }),
    });
    return { rows, bytes };
  } finally {
    await control.end().catch(() => undefined);
  }
}

/**
 * The body of `apps/capture` in the incremental phase: streams the task's slot into the table
 * topics until `stop`. Safe to kill at any point: the slot is confirmed only as far as Kafka
 * acknowledged, so the next capture sends again at most the unconfirmed transactions, which
 * the applier's apply-by-key absorbs.
 */
export async function runStreamProcess(
  config: StreamProcessConfig,
  emit: (e: MigrationEvent) => void,
  stop: AbortSignal,
): Promise<void> {
  const { spec } = config;
  await runStreamCapture({
    task: spec.name,
    source: resolveEndpoint(spec.source, 'source'),
    destination: resolveEndpoint(spec.destination, 'destination'),
    tables: config.tables,
    objects: spec.objects,
    kafka: kafkaConfig(config.kafka, `pgferry-${spec.name}-capture`),
    registryUrl: config.registryUrl,
    prefix: config.topicPrefix,
    partitions: config.partitions,
    stop,
    retryWindowMs: spec.options.retry.connectionMinutes * 60_000,
    wholeTransactions: spec.options.consistency === 'transactional',
    onProgress: (p) => emit({ kind: 'stream', ...p }),
    onSchemaChange: (e) => emit({ kind: 'schema-change', ...e }),
    onNewTable: (e) => emit({ kind: 'new-table', ...e }),
  });
}
