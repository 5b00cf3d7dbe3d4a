import { connect, resolveEndpoint } from '@pgferry/pg';
import { ControlStore } from '@pgferry/control';
import { runSnapshotCapture } from '@pgferry/capture';
import { kafkaClient, registryClient } from './kafka-client';
import type { Emit } from './migration-event';
import type { CaptureProcessConfig, StreamProcessConfig } from './process-config';
import { snapshotCaptureOptions } from './process-options';
import { leasedStreamCapture } from './stream-lease';

/**
 * The body of `apps/capture`: reads every pending chunk under the configured snapshot and sends
 * it to Kafka, checkpointing chunks in the destination's control schema. Safe to run again
 * after a crash: finished chunks are skipped, unfinished ones are sent again whole (their new
 * attempt is recorded before any of their rows is sent, so the applier gives a table still
 * without its key the key first, and its upsert absorbs what the killed attempt had sent).
 */
export async function runCaptureProcess(
  config: CaptureProcessConfig,
  emit: Emit,
): Promise<{ rows: number; bytes: number }> {
  const { spec } = config;
  const dst = resolveEndpoint(spec.destination, 'destination');
  const control = await connect(dst, 'destination', { applicationName: 'pgferry capture' });
  try {
    const { rows, bytes } = await runSnapshotCapture(
      snapshotCaptureOptions(config, {
        kafka: kafkaClient(config.kafka, `pgferry-${spec.name}-capture`),
        registry: registryClient(spec, config.registryUrl),
        control: new ControlStore(control, spec.name),
        emit,
      }),
    );
    return { rows, bytes };
  } finally {
    await control.end().catch(() => undefined);
  }
}

/**
 * The body of `apps/capture` in the incremental phase: streams the task's slot into the table
 * topics until `stop`, under the task's capture lease (one capture streams at a time). Safe to kill at any point: the slot is confirmed only as far as Kafka
 * acknowledged, so the next capture sends again at most the unconfirmed transactions, which
 * the applier's apply-by-key absorbs.
 */
export async function runStreamProcess(
  config: StreamProcessConfig,
  emit: Emit,
  stop: AbortSignal,
): Promise<void> {
  const kafka = kafkaClient(config.kafka, `pgferry-${config.spec.name}-capture`);
  await leasedStreamCapture(config, { kafka, emit, stop });
}
