import { rmSync } from 'node:fs';
import { isRetriable, PgferryError, RetryDeadlineError, sleep } from '@pgferry/core';
import { RegistryClient } from '@pgferry/avro';
import { runStreamCapture } from '@pgferry/capture';
import type { KafkaClient } from '../kafka-client';
import type { Emit } from '../migration-event';
import type { ApplierSettings, StreamSettings } from '../process-config';
import { changeApplier, streamCaptureOptions } from '../process-options';
import { childConfigFile, superviseChild, type ChildProcessesOptions } from '../supervise/task-child';

/** What a running stream and applier look like to the phase loop, in-process or as children. */
export interface RunningStream {
  /** The failure that ends the phase, null while both run (or one is being replaced). */
  failure(): Error | null;
  /** Stops both and waits for them. */
  stop(): Promise<void>;
}

/**
 * The stream capture and the change applier inside the controller, configured as the children
 * would be (process-options.ts). A lost destination fails the applier with a retriable error: a
 * new one takes over from the stored offsets (as the supervisor restarts a child), within
 * retry.connectionMinutes.
 */
export async function startStreamInProcess(
  stream: StreamSettings,
  applierSettings: ApplierSettings,
  kafka: KafkaClient,
  emit: Emit,
): Promise<RunningStream> {
  const { spec } = stream;
  const abort = new AbortController();
  let failure: Error | null = null;
  const newApplier = () =>
    changeApplier(applierSettings, { kafka, registry: new RegistryClient(applierSettings.registryUrl) });
  let applier = newApplier();
  await applier.start();
  let replacing: Promise<void> | null = null;
  const replace = async (lost: Error) => {
    const since = Date.now();
    let last = lost;
    await applier.stop();
    while (!abort.signal.aborted) {
      if (Date.now() - since > spec.options.retry.connectionMinutes * 60_000) {
        failure ??= new RetryDeadlineError(1, Date.now() - since, last);
        return;
      }
      await sleep(1000, abort.signal);
      const next = newApplier();
      try {
        await next.start();
        applier = next;
        return;
      } catch (err) {
        await next.stop().catch(() => undefined);
        if (!isRetriable(err)) {
          failure ??= err as Error;
          return;
        }
        last = err as Error;
      }
    }
  };
  const streaming = runStreamCapture(streamCaptureOptions(stream, { kafka, emit, stop: abort.signal })).then(
    () => {
      if (!abort.signal.aborted) failure ??= new PgferryError('the change stream ended on its own');
    },
    (err) => {
      failure ??= err instanceof Error ? err : new PgferryError(String(err));
    },
  );
  return {
    failure: () => {
      const lost = applier.error;
      if (failure || !lost || !isRetriable(lost)) return failure ?? lost;
      replacing ??= replace(lost).finally(() => (replacing = null));
      return null;
    },
    async stop() {
      abort.abort();
      await streaming;
      await replacing;
      await applier.stop();
    },
  };
}

/** The stream capture and the change applier as supervised children of the controller. */
export function startStreamChildren(
  stream: StreamSettings,
  applierSettings: ApplierSettings,
  processes: ChildProcessesOptions,
  emit: Emit,
): RunningStream {
  const { spec } = stream;
  const streamConfig = childConfigFile(processes.dir, 'stream');
  const applierConfig = childConfigFile(processes.dir, 'applier');
  const applier = superviseChild(spec, processes, emit, {
    name: 'applier',
    entry: processes.applierEntry,
    kind: 'service',
    file: applierConfig,
    settings: applierSettings,
  });
  const capture = superviseChild(spec, processes, emit, {
    name: 'capture',
    entry: processes.captureEntry,
    kind: 'service',
    file: streamConfig,
    settings: stream,
  });
  applier.start();
  capture.start();
  return {
    failure: () => capture.failure ?? applier.failure,
    async stop() {
      await Promise.all([capture.stop(), applier.stop()]);
      rmSync(streamConfig, { force: true });
      rmSync(applierConfig, { force: true });
    },
  };
}
