import type { Client } from 'pg';
import {
  describeError,
  isRetriable,
  PgferryError,
  redactString,
  retry,
  retryDeadlines,
  retryWindowName,
  withTimeout,
  ConnectionError,
  type TaskSpec,
} from '@pgferry/core';
import { classifyPgError, formatLsn, parseLsn } from '@pgferry/pg';
import { deadLetterTopic, heartbeatTopic, transactionsTopic } from '@pgferry/avro';
import {
  AppliedRate,
  cutoverRequested,
  markCoverage,
  readStreamLag,
  readThrottleStatus,
  writeStreamSettings,
} from '@pgferry/control';
import { ensureTopic, type KafkaClient } from '../kafka-client';
import type { MigrationContext } from './migration-context';
import type { Emit } from '../migration-event';
import type { ApplierSettings, StreamSettings } from '../process-config';
import { prepareStreamSource } from '../stream-source';
import type { ChildProcessesOptions } from '../supervise/task-child';
import { startStreamChildren, startStreamInProcess } from './incremental-processes';
import type { Phase } from './phase';
import { SlotWalWatch } from './slot-wal-watch';
import { StallWatch } from './stall-watch';
import { cutoverProgress } from './caught-up';

/** The longest a poll of the stream's state may take before its connections count as lost. */
const POLL_TIMEOUT_MS = 30_000;
/** How soon a cutover request is noticed between two looks at the stream. */
const REQUEST_POLL_MS = 200;
/** How often the stream is looked at once a cutover is requested, until it caught up. */
const CUTOVER_POLL_MS = 100;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The user stopped the task (SIGINT/SIGTERM) before cutover; running migrate again resumes it. */
export class TaskStoppedError extends PgferryError {
  constructor(task: string) {
    super(
      `task ${task} stopped before cutover; its slot keeps the changes since: run migrate again to resume streaming, then pgferry cutover`,
      { retriable: false, code: 'TASK_STOPPED' },
    );
  }
}

/**
 * Incremental (incremental tasks): the slot streamed into the table topics and applied until a
 * cutover is requested, then until the destination holds every change the source had committed
 * when the request was seen. Before: the slot exists (full-data created it, and the
 * publication before it) and the destination holds the snapshot. Records: the stream's position
 * and marks in pgferry.stream_status and pgferry.stream_marks, the applied offsets in
 * pgferry.offsets, the tables the stream gains in pgferry.stream_tables. Resumable: the slot
 * keeps its confirmed position and the applier its offsets, so a run after a stop or a failure
 * continues where this one ended.
 */
export const incrementalPhase: Phase<MigrationContext> = {
  name: 'incremental',
  selection: (ctx) => (ctx.spec.migrationTypes.incremental ? 'selected' : 'not-applicable'),
  async run(ctx) {
    // The exported snapshot is no longer needed: the stream starts where it ended.
    await ctx.releaseSnapshot();
    const common = { spec: ctx.spec, registryUrl: ctx.options.registryUrl, topicPrefix: ctx.prefix };
    ctx.result.incremental = await runIncrementalPhase({
      spec: ctx.spec,
      kafka: ctx.options.kafka,
      stream: { ...common, role: 'stream', partitions: ctx.partitions, tables: ctx.tables },
      applier: { ...common, role: 'applier', mode: 'changes', group: ctx.group, targets: ctx.targets },
      source: ctx.source,
      control: ctx.control,
      recordStartOffsets: (topics) => ctx.recordStartOffsets(topics),
      // A server restart while streaming: the controller's connections are opened again, and
      // the phases after this one use the new ones.
      reconnect: () => ctx.reconnect(),
      processes: ctx.options.processes,
      emit: ctx.emit,
      signal: ctx.options.signal,
    });
    return ctx.result.incremental;
  },
};

export interface IncrementalPhaseOptions {
  spec: TaskSpec;
  /** The controller's client: creates the single-partition topics, runs an in-process stream. */
  kafka: KafkaClient;
  /** The capture's and the applier's settings, as children or in this process. */
  stream: StreamSettings;
  applier: ApplierSettings;
  /** The controller's source connection (publication, positions). */
  source: Client;
  /** The controller's destination connection (control schema). */
  control: Client;
  /** Records the run's start offsets of topics not recorded yet (MigrationContext.recordStartOffsets). */
  recordStartOffsets: (topics: readonly string[]) => Promise<void>;
  /**
   * Opens the controller's connections again after one was lost (a server restart), and
   * returns them; the phase retries this within options.retry.connectionMinutes.
   */
  reconnect?: () => Promise<{ source: Client; control: Client }>;
  processes?: ChildProcessesOptions;
  emit: Emit;
  /** Aborting stops the stream and the applier; the phase then fails with TaskStoppedError. */
  signal?: AbortSignal;
  pollMs?: number;
}

/**
 * Streams and applies until a cutover is requested (pgferry cutover, or requestCutover) and the
 * destination caught up with it; reports the lag about once a second. Returns the outcome.
 */
export async function runIncrementalPhase(opts: IncrementalPhaseOptions): Promise<string> {
  const { spec } = opts;
  const task = spec.name;
  const prefix = opts.stream.topicPrefix;
  // In step with the selection (idempotent); they exist since the full-data phase created them
  // before the slot, as pgoutput reads the publication as of each change's position.
  await prepareStreamSource(opts.source, spec, opts.stream.tables);
  // Transaction metadata and heartbeats in one partition each, so they are in commit order.
  await ensureTopic(opts.kafka, transactionsTopic(prefix));
  await ensureTopic(opts.kafka, heartbeatTopic(prefix));
  if (spec.options.onError === 'dead-letter') await ensureTopic(opts.kafka, deadLetterTopic(prefix));
  // Where the run's records begin in every topic an applier reads (those of the table topics
  // were recorded by the full-data phase and are kept): before the stream writes its first record.
  await opts.recordStartOffsets([...opts.applier.targets.map((t) => t.topic), transactionsTopic(prefix)]);
  // Captures and appliers that run elsewhere (options.stream) read what to stream and apply here.
  await writeStreamSettings(opts.control, task, {
    topicPrefix: prefix,
    partitions: opts.stream.partitions,
    tables: opts.stream.tables,
    group: opts.applier.group,
    targets: opts.applier.targets,
  });
  const running = opts.processes
    ? startStreamChildren(opts.stream, opts.applier, opts.processes, opts.emit)
    : await startStreamInProcess(opts.stream, opts.applier, opts.kafka, opts.emit);
  const pollMs = opts.pollMs ?? 1000;
  let target: bigint | null = null;
  /** A mark past the target was seen while the capture reported less (reported once). */
  let behindMarkSeen = false;
  const rate = new AppliedRate();
  const slotWatch = new SlotWalWatch(task, spec.options.walRetainedAlertBytes);
  const stallMs = spec.options.stallSeconds * 1000;
  const stalls = new StallWatch(stallMs);
  let { source, control } = opts;
  const windows = spec.options.retry;
  /** The failure of the stream or the applier that ends the phase: never retried here. */
  let ended: Error | null = null;
  try {
    for (;;) {
      // A lost controller connection (a server restart): opened again, and the poll retried,
      // within retry.connectionMinutes of failures in a row (otherMinutes for other retriable ones).
      const polled = await retry(
        async (attempt) => {
          ended = running.failure();
          if (ended) throw ended;
          if (opts.signal?.aborted) throw new TaskStoppedError(task);
          if (attempt > 1 && opts.reconnect)
            ({ source, control } = await opts.reconnect().catch(() => ({ source, control })));
          try {
            // A connection gone silent (no answer, never closed) is a lost one: reconnect.
            return await withTimeout(
              poll(),
              Math.min(stallMs, POLL_TIMEOUT_MS),
              () =>
                new ConnectionError(
                  `following the change stream: the destination or the source did not answer in ${Math.round(Math.min(stallMs, POLL_TIMEOUT_MS) / 1000)} s`,
                ),
            );
          } catch (e) {
            throw classifyPgError(e, 'following the change stream');
          }
        },
        {
          ...retryDeadlines(windows),
          initialDelayMs: 500,
          maxDelayMs: 5000,
          signal: opts.signal,
          shouldRetry: (e) => e !== ended && opts.reconnect !== undefined && isRetriable(e),
          onRetry: (e, _attempt, delayMs) => {
            stalls.reset();
            opts.emit({
              kind: 'phase',
              phase: 'incremental',
              status: 'running',
              detail: `lost a connection (${redactString(describeError(e))}); reconnecting in ${(delayMs / 1000).toFixed(1)} s, for up to ${retryWindowName(e, windows)}`,
            });
          },
        },
      ).catch((e) => {
        // Stopped while waiting to reconnect.
        throw opts.signal?.aborted && e !== ended && isRetriable(e) ? new TaskStoppedError(task) : e;
      });
      if (polled !== null) return polled;
      await pauseUntilNextLook();
    }
  } finally {
    await running.stop();
  }

  /**
   * The wait between two looks: pollMs, but a cutover request (whose wait is writes blocked on
   * the source) is noticed within REQUEST_POLL_MS, and once one is, the stream is looked at every
   * CUTOVER_POLL_MS until it has caught up.
   */
  async function pauseUntilNextLook(): Promise<void> {
    if (target !== null) return sleep(CUTOVER_POLL_MS);
    const next = Date.now() + pollMs;
    while (Date.now() + REQUEST_POLL_MS < next && !opts.signal?.aborted) {
      await sleep(REQUEST_POLL_MS);
      if (await cutoverRequested(control, task).catch(() => false)) return;
    }
    await sleep(Math.max(0, next - Date.now()));
  }

  /** One look at the stream: reports the lag, notices a cutover request; the outcome once caught up. */
  async function poll(): Promise<string | null> {
    const lag = await readStreamLag(control, task, spec.options.lagBoundSeconds);
    // An invalidated slot ends the phase (not retried: the lost WAL cannot come back).
    const warning = slotWatch.check(lag.slot);
    if (warning) opts.emit({ kind: 'warning', message: warning });
    // An applier waiting for its rate limit is not stuck (options.throttle.incremental).
    const throttled = (await readThrottleStatus(control, task).catch(() => null))?.incremental?.throttled;
    for (const stall of stalls.observe(lag))
      if (!(stall.process === 'applier' && throttled) && running.restart(stall.process, stall.reason))
        opts.emit({
          kind: 'phase',
          phase: 'incremental',
          status: 'running',
          detail: `restarting the ${stall.process}: ${stall.reason}`,
        });
    opts.emit({
      kind: 'lag',
      lag,
      recordsPerSecond: rate.update(lag.appliedRecords),
      cutoverLsn: target === null ? null : formatLsn(target),
    });
    if (target === null && (await cutoverRequested(control, task))) {
      const { rows } = await source.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
      target = parseLsn(rows[0].lsn);
      opts.emit({
        kind: 'phase',
        phase: 'incremental',
        status: 'running',
        detail: `cutover requested: catching up to source position ${formatLsn(target)}`,
      });
    }
    // The lag read above is at most a poll old; the next poll sees a mark that passed since.
    const goal = target;
    const progress = goal === null ? null : cutoverProgress(lag, goal);
    if (goal === null || progress === null) return null;
    if (progress === 'capture-behind') {
      if (!behindMarkSeen) {
        behindMarkSeen = true;
        const coverage = await markCoverage(control, task, parseLsn(lag.appliedLsn ?? '0/0')).catch(
          (e: unknown) => `not read: ${describeError(e)}`,
        );
        opts.emit({
          kind: 'phase',
          phase: 'incremental',
          status: 'running',
          detail: `the applied mark ${lag.appliedLsn} is past the target ${formatLsn(goal)} but the capture reports ${lag.capturedLsn ?? 'nothing'} confirmed (reported ${lag.reportedAt ?? 'never'}); waiting for the capture to confirm the target. Mark partitions end/stored: ${coverage ?? 'mark gone'}`,
        });
      }
      return null;
    }
    return `caught up to source position ${lag.appliedLsn} (cutover requested at ${formatLsn(goal)}; capture confirmed ${lag.capturedLsn})`;
  }
}
