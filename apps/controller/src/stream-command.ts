import type { Writable } from 'node:stream';
import { PgferryError, stripUrlPassword, urlPassword } from '@pgferry/core';
import {
  runExternalApplier,
  runExternalCapture,
  specKafkaConnection,
  specRegistryUrl,
  type MigrationEvent,
} from '@pgferry/task';
import { specFromOptions, type MigrateOptions } from './migrate-command';
import { formatLag } from './progress';

export type StreamCommandOptions = Pick<
  MigrateOptions,
  'spec' | 'kafka' | 'schemaRegistry' | 'sourcePasswordFile' | 'targetPasswordFile'
> & {
  out: Writable;
  /** Stops the process (tests; the CLI uses SIGINT/SIGTERM). */
  signal?: AbortSignal;
};

/**
 * `pgferry capture --spec F` and `pgferry applier --spec F`: the incremental phase's capture or
 * a change applier on a machine (or container) of its own, for a task whose options.stream
 * keeps them out of pgferry migrate. Waits for the phase, runs until it is done (exit 0), or
 * until SIGINT/SIGTERM (exit 130). Several captures: one streams, the others stand by; several
 * appliers: one consumer group.
 */
export async function runStreamCommand(
  role: 'capture' | 'applier',
  opts: StreamCommandOptions,
): Promise<number> {
  if (!opts.spec) throw new PgferryError(`pgferry ${role} needs --spec FILE (the task's spec)`);
  const spec = await specFromOptions(opts);
  const brokers = spec.kafka.brokers;
  const registryUrl = spec.kafka.schemaRegistryUrl && specRegistryUrl(spec, spec.kafka.schemaRegistryUrl);
  if (!brokers || !registryUrl)
    throw new PgferryError(
      `pgferry ${role} runs beside a Kafka the controller uses too: give --kafka and --schema-registry (or KAFKA_BROKERS and SCHEMA_REGISTRY_URL, or kafka.brokers and kafka.schemaRegistryUrl in the spec)`,
    );
  const say = (line: string) => opts.out.write(`${role.padEnd(12)} ${line}\n`);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  opts.signal?.addEventListener('abort', onSignal, { once: true });
  let lastProgress = 0;
  const emit = (e: MigrationEvent) => {
    if (e.kind === 'schema-change')
      say(`schema change ${e.tag}: ${e.statement}${e.warning ? ` (${e.warning})` : ''}`);
    else if (e.kind === 'new-table') say(`streaming ${e.table} (new to the task) into ${e.topic}`);
    else if (e.kind === 'stream' && Date.now() - lastProgress > 10_000) {
      lastProgress = Date.now();
      say(`captured ${e.capturedLsn}, ${e.published} records published`);
    } else if (e.kind === 'lag') say(formatLag(e.lag, e.recordsPerSecond, e.cutoverLsn).trim());
  };
  try {
    const run = role === 'capture' ? runExternalCapture : runExternalApplier;
    say(
      `task ${spec.name}, kafka ${brokers.join(',')}, schema registry ${urlPassword(registryUrl) ? stripUrlPassword(registryUrl) : registryUrl}`,
    );
    const outcome = await run({
      spec,
      kafka: specKafkaConnection(spec, brokers),
      registryUrl,
      emit,
      say,
      stop: stop.signal,
    });
    say(outcome === 'done' ? 'the incremental phase is done: exiting' : 'stopped');
    return outcome === 'done' ? 0 : 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
