import type { Client } from 'pg';
import {
  describeError,
  isRetriable,
  redactString,
  retry,
  retryDeadlines,
  retryWindowName,
  sleep,
  type TaskSpec,
} from '@pgferry/core';
import { classifyPgError, connect, resolveEndpoint, type SelectedTable } from '@pgferry/pg';
import { applyUntilStopped, type ApplierTarget } from '@pgferry/apply';
import { ControlStore, readStreamSettings, type RecordedStreamSettings } from '@pgferry/control';
import { kafkaClient, registryClient, type KafkaConnection } from './kafka-client';
import type { Emit } from './migration-event';
import type { ApplierSettings, StreamSettings } from './process-config';
import { changeApplier } from './process-options';
import { leasedStreamCapture } from './stream-lease';

/**
 * The incremental phase's capture and appliers on machines of their own (`pgferry capture`,
 * `pgferry applier`; the task's options.stream says the controller does not run them): each
 * waits until the controller has started the phase and recorded what to stream and apply
 * (pgferry.stream_settings), runs until the phase is done (the cutover caught up) or `stop`
 * aborts, and rides out connection losses for retry.connectionMinutes, other retriable failures for otherMinutes. Their endpoints, Kafka
 * and registry come from their own spec and options, so each may reach them by its own addresses.
 */
export interface ExternalProcessOptions {
  spec: TaskSpec;
  kafka: KafkaConnection;
  registryUrl: string;
  emit: Emit;
  /** Lines for the operator (waiting, taking over, done). */
  say: (line: string) => void;
  stop: AbortSignal;
  pollMs?: number;
}

/** How the external process ended: the phase is done, or it was asked to stop. */
export type ExternalOutcome = 'done' | 'stopped';

export async function runExternalCapture(opts: ExternalProcessOptions): Promise<ExternalOutcome> {
  return runUntilDone(opts, 'capture', async (recorded, stop) => {
    let waiting = '';
    const settings: StreamSettings = {
      role: 'stream',
      spec: opts.spec,
      registryUrl: opts.registryUrl,
      topicPrefix: recorded.topicPrefix,
      partitions: recorded.partitions,
      tables: recorded.tables as SelectedTable[],
    };
    await leasedStreamCapture(settings, {
      kafka: kafkaClient(opts.kafka, `pgferry-${opts.spec.name}-capture`),
      emit: (e) => {
        if (waiting && e.kind === 'stream') {
          opts.say('streaming: this capture holds the lease now');
          waiting = '';
        }
        opts.emit(e);
      },
      stop,
      onWait: (holder) => {
        if (holder !== waiting) opts.say(`standing by: the capture lease is held by ${holder}`);
        waiting = holder;
      },
    });
  });
}

export async function runExternalApplier(opts: ExternalProcessOptions): Promise<ExternalOutcome> {
  return runUntilDone(opts, 'applier', async (recorded, stop) => {
    const settings: ApplierSettings = {
      role: 'applier',
      mode: 'changes',
      spec: opts.spec,
      registryUrl: opts.registryUrl,
      topicPrefix: recorded.topicPrefix,
      group: recorded.group,
      targets: recorded.targets as ApplierTarget[],
    };
    const applier = changeApplier(settings, {
      kafka: kafkaClient(opts.kafka, `pgferry-${opts.spec.name}-applier`),
      registry: registryClient(opts.spec, opts.registryUrl),
    });
    try {
      await applier.start();
      await applyUntilStopped(applier, stop);
    } finally {
      await applier.stop().catch(() => undefined);
    }
  });
}

/**
 * Waits for the recorded settings, then runs `body` until the incremental phase is done or
 * `stop` aborts, starting it again after a retriable failure (within retry.connectionMinutes
 * of connection losses in a row, retry.otherMinutes of other failures) and failing on any other.
 */
async function runUntilDone(
  opts: ExternalProcessOptions,
  role: 'capture' | 'applier',
  body: (settings: RecordedStreamSettings, stop: AbortSignal) => Promise<void>,
): Promise<ExternalOutcome> {
  const task = opts.spec.name;
  const pollMs = opts.pollMs ?? 2000;
  const windows = opts.spec.options.retry;
  const dst = resolveEndpoint(opts.spec.destination, 'destination');
  // Opened by a run, closed when it fails (the next opens it again) and at the end.
  let control = null as Client | null;
  let said = false;
  /** One run: 'done', or 'again' when the body ended while the phase still runs. */
  const once = async (): Promise<ExternalOutcome | 'again'> => {
    try {
      control ??= await connect(dst, 'destination', { applicationName: `pgferry ${role}` });
      // Waiting for the controller to start the phase (polling, not retrying).
      let recorded: RecordedStreamSettings | null = null;
      for (;;) {
        const status = await phaseStatus(control, task);
        if (status === 'done') return 'done';
        recorded = status === 'running' ? await readStreamSettings(control, task) : null;
        if (recorded || opts.stop.aborted) break;
        if (!said)
          opts.say(`waiting for task ${task}'s incremental phase to start (pgferry migrate runs it)`);
        said = true;
        await sleep(pollMs, opts.stop);
      }
      if (!recorded) return 'stopped';
      const phaseDone = new AbortController();
      const onStop = () => phaseDone.abort();
      opts.stop.addEventListener('abort', onStop, { once: true });
      const watcher = watchPhase(control, task, pollMs, phaseDone);
      try {
        await body(recorded, phaseDone.signal);
      } finally {
        phaseDone.abort();
        opts.stop.removeEventListener('abort', onStop);
        await watcher;
      }
      if ((await phaseStatus(control, task)) === 'done') return 'done';
      return opts.stop.aborted ? 'stopped' : 'again';
    } catch (err) {
      await control?.end().catch(() => undefined);
      control = null;
      throw classifyPgError(err, `running the ${role} of task ${task}`);
    }
  };
  try {
    // Each run that ends without a failure starts a new run of retries.
    while (!opts.stop.aborted) {
      const outcome = await retry(once, {
        ...retryDeadlines(windows),
        initialDelayMs: 500,
        maxDelayMs: 15_000,
        signal: opts.stop,
        onRetry: (err, _attempt, delayMs) =>
          opts.say(
            `${role} failed (${redactString(describeError(err))}); starting again in ${(delayMs / 1000).toFixed(1)} s, for up to ${retryWindowName(err, windows)}`,
          ),
      }).catch((err) => {
        // Stopped while waiting to start again.
        if (opts.stop.aborted && isRetriable(err)) return 'stopped' as const;
        throw err;
      });
      if (outcome !== 'again') return outcome;
    }
    return 'stopped';
  } finally {
    await control?.end().catch(() => undefined);
  }
}

/** The incremental phase's status; 'pending' while the controller has not created its control schema yet. */
async function phaseStatus(control: Client, task: string): Promise<string> {
  const { rows } = await control.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`);
  if (!rows[0].has) return 'pending';
  return new ControlStore(control, task).phaseStatus('incremental');
}

/** Aborts `done` once the incremental phase is done (polling), or when it is aborted elsewhere. */
async function watchPhase(
  control: Client,
  task: string,
  pollMs: number,
  done: AbortController,
): Promise<void> {
  while (!done.signal.aborted) {
    await sleep(pollMs, done.signal);
    if (done.signal.aborted) return;
    const status = await phaseStatus(control, task).catch(() => 'unknown');
    if (status === 'done') done.abort();
  }
}
