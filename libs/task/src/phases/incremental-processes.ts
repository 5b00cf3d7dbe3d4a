import { rmSync } from 'node:fs';
import {
  describeError,
  isRetriable,
  PgferryError,
  redactString,
  retry,
  retryDeadlines,
  retryWindowName,
} from '@pgferry/core';
import { registryClient, type KafkaClient } from '../kafka-client';
import type { Emit } from '../migration-event';
import type { ApplierSettings, StreamSettings } from '../process-config';
import { changeApplier } from '../process-options';
import { leasedStreamCapture } from '../stream-lease';
import type { MigrationEvent } from '../migration-event';
import type { ChildSupervisor } from '../supervise/child-supervisor';
import { childConfigFile, superviseChild, type ChildProcessesOptions } from '../supervise/task-child';

/** What a running stream and applier look like to the phase loop, in-process or as children. */
export interface RunningStream {
  /** The failure that ends the phase, null while both run (or one is being replaced). */
  failure(): Error | null;
  /** Stops both and waits for them. */
  stop(): Promise<void>;
  /**
   * Starts a stuck process again (the watchdog, StallWatch): the children are killed and
   * restarted by their supervisors; in this process nothing is done (false), the stuck call's
   * own timeouts end it.
   */
  restart(process: 'capture' | 'applier', reason: string): boolean;
}

/**
 * The stream capture and the change applier inside the controller, configured as the children
 * would be (process-options.ts). A lost destination fails the applier with a retriable error: a
 * new one takes over from the stored offsets (as the supervisor restarts a child), within
 * retry.connectionMinutes (retry.otherMinutes for other retriable failures); a capture that fails retriably is started again likewise.
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
    changeApplier(applierSettings, {
      kafka,
      registry: registryClient(spec, applierSettings.registryUrl),
      emit,
    });
  // options.stream: the capture and the appliers may run elsewhere (pgferry capture, pgferry applier).
  const ownCapture = spec.options.stream.capture === 'controller';
  let applier = spec.options.stream.appliers > 0 ? newApplier() : null;
  await applier?.start();
  let replacing: Promise<void> | null = null;
  const windows = spec.options.retry;
  /** Retries of a process started again within its failure's retry window, each one reported. */
  const restarts = (what: string, again: string) => ({
    ...retryDeadlines(windows),
    initialDelayMs: 1000,
    maxDelayMs: 5000,
    signal: abort.signal,
    onRetry: (err: unknown, _attempt: number, delayMs: number) =>
      emit({
        kind: 'phase',
        phase: 'incremental',
        status: 'running',
        detail: `${what} failed (${redactString(describeError(err))}); ${again} in ${(delayMs / 1000).toFixed(1)} s, for up to ${retryWindowName(err, windows)}`,
      }),
  });
  // A new applier in place of the lost one, started again after retriable failures within
  // their retry window. The lost one counts as the first failed attempt: the deadline runs
  // from the loss, and the first new applier starts after the first delay.
  const replace = async (lost: Error) => {
    await applier?.stop();
    try {
      applier = await retry(
        async (attempt) => {
          if (attempt === 1) throw lost;
          const next = newApplier();
          try {
            await next.start();
            return next;
          } catch (err) {
            await next.stop().catch(() => undefined);
            throw err;
          }
        },
        restarts('the applier', 'starting a new one'),
      );
    } catch (err) {
      if (!abort.signal.aborted) failure ??= err as Error;
    }
  };
  // A capture that fails retriably before it streams (taking its lease while the destination
  // restarts) is started again, as the supervisor restarts a capture child; the stream itself
  // rides out lost connections within the same window (runStreamCapture).
  const capture = () =>
    retry(
      () => leasedStreamCapture(stream, { kafka, emit, stop: abort.signal }),
      restarts('the capture', 'starting it again'),
    );
  const streaming = ownCapture
    ? capture().then(
        () => {
          if (!abort.signal.aborted) failure ??= new PgferryError('the change stream ended on its own');
        },
        (err) => {
          if (!abort.signal.aborted || !isRetriable(err))
            failure ??= err instanceof Error ? err : new PgferryError(String(err));
        },
      )
    : Promise.resolve();
  return {
    failure: () => {
      const lost = applier?.error ?? null;
      if (failure || !lost || !isRetriable(lost)) return failure ?? lost;
      replacing ??= replace(lost).finally(() => (replacing = null));
      return null;
    },
    restart: () => false,
    async stop() {
      abort.abort();
      await streaming;
      await replacing;
      await applier?.stop();
    },
  };
}

/**
 * The stream capture and the change appliers as supervised children of the controller, as many
 * as options.stream says: the capture unless it runs elsewhere, `appliers` change appliers (one
 * consumer group; each named applier, applier-2, ... for its pid and log files).
 */
export function startStreamChildren(
  stream: StreamSettings,
  applierSettings: ApplierSettings,
  processes: ChildProcessesOptions,
  emit: Emit,
): RunningStream {
  const { spec } = stream;
  const children: ChildSupervisor<MigrationEvent>[] = [];
  const appliers: ChildSupervisor<MigrationEvent>[] = [];
  let capture: ChildSupervisor<MigrationEvent> | null = null;
  const files: string[] = [];
  for (let i = 1; i <= spec.options.stream.appliers; i++) {
    const name = i === 1 ? 'applier' : `applier-${i}`;
    const file = childConfigFile(processes.dir, name);
    files.push(file);
    const applier = superviseChild(spec, processes, emit, {
      name,
      entry: processes.applierEntry,
      kind: 'service',
      file,
      settings: applierSettings,
    });
    appliers.push(applier);
    children.push(applier);
  }
  if (spec.options.stream.capture === 'controller') {
    const file = childConfigFile(processes.dir, 'stream');
    files.push(file);
    capture = superviseChild(spec, processes, emit, {
      name: 'capture',
      entry: processes.captureEntry,
      kind: 'service',
      file,
      settings: stream,
    });
    children.push(capture);
  }
  for (const c of children) c.start();
  return {
    failure: () => children.map((c) => c.failure).find((f) => f) ?? null,
    restart(process, reason) {
      const stuck = process === 'capture' ? (capture ? [capture] : []) : appliers;
      for (const c of stuck) c.restartNow(reason);
      return stuck.length > 0;
    },
    async stop() {
      await Promise.all(children.map((c) => c.stop()));
      for (const f of files) rmSync(f, { force: true });
    },
  };
}
