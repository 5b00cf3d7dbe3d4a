import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  describeError,
  isRetriable,
  PgferryError,
  RetryDeadlineError,
  sleep,
  type TaskSpec,
} from '@pgferry/core';
import {
  classifyPgError,
  connect,
  newTableRule,
  resolveEndpoint,
  type SelectedTable,
  formatLsn,
  parseLsn,
} from '@pgferry/pg';
import {
  ensureHeartbeatTable,
  ensurePublication,
  publicationName,
  installDdlCapture,
  runStreamCapture,
} from '@pgferry/capture';
import { RegistryClient, deadLetterTopic, heartbeatTopic, transactionsTopic } from '@pgferry/avro';
import type { ApplierTarget } from '@pgferry/apply';
import { changeApplier } from './applier-process';
import type { MigrationEvent } from './full-migration';
import { superviseChild, type ChildProcessesOptions } from './supervised-full-data';
import { AppliedRate, cutoverRequested, readStreamLag } from '@pgferry/control';
import { withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';

/** The user stopped the task (SIGINT/SIGTERM) before cutover; running migrate again resumes it. */
export class TaskStoppedError extends PgferryError {
  constructor(task: string) {
    super(
      `task ${task} stopped before cutover; its slot keeps the changes since: run migrate again to resume streaming, then pgferry cutover`,
      { retriable: false, code: 'TASK_STOPPED' },
    );
  }
}

export interface IncrementalPhaseOptions {
  spec: TaskSpec;
  kafka: KafkaClientConfig;
  registryUrl: string;
  prefix: string;
  partitions: number;
  tables: SelectedTable[];
  targets: ApplierTarget[];
  group: string;
  /** The controller's source connection (publication, positions). */
  source: Client;
  /** The controller's destination connection (control schema). */
  control: Client;
  /**
   * Opens the controller's connections again after one was lost (a server restart), and
   * returns them; the phase retries this within options.retry.connectionMinutes.
   */
  reconnect?: () => Promise<{ source: Client; control: Client }>;
  processes?: ChildProcessesOptions;
  emit: (e: MigrationEvent) => void;
  /** Aborting stops the stream and the applier; the phase then fails with TaskStoppedError. */
  signal?: AbortSignal;
  pollMs?: number;
}

/** What a running stream and applier look like to the phase loop, in-process or as children. */
interface Running {
  failure(): Error | null;
  stop(): Promise<void>;
}

/**
 * The incremental phase: streams the slot into the table topics and applies them until a
 * cutover is requested (pgferry cutover, or requestCutover), then waits until the destination
 * holds every change the source had committed when the request was seen, and stops. Reports
 * the lag about once a second. Resumable: the slot keeps its confirmed position and the
 * applier its offsets, so running it again continues where it stopped.
 */
export async function runIncrementalPhase(opts: IncrementalPhaseOptions): Promise<string> {
  const { spec } = opts;
  const task = spec.name;
  // In step with the selection (idempotent); they exist since the full-data phase created them
  // before the slot, as pgoutput reads the publication as of each change's position.
  await prepareStreamSource(opts.source, spec, opts.tables);
  // Transaction metadata and heartbeats in one partition each, so they are in commit order.
  await ensureTopic(opts.kafka, transactionsTopic(opts.prefix));
  await ensureTopic(opts.kafka, heartbeatTopic(opts.prefix));
  if (spec.options.onError === 'dead-letter') await ensureTopic(opts.kafka, deadLetterTopic(opts.prefix));
  const running = opts.processes ? startChildren(opts, opts.processes) : await startInProcess(opts);
  const pollMs = opts.pollMs ?? 1000;
  let target: bigint | null = null;
  const rate = new AppliedRate();
  let { source, control } = opts;
  /** Since when the controller's connections are failing (null while they work). */
  let lostSince: number | null = null;
  try {
    for (;;) {
      const err = running.failure();
      if (err) throw err;
      if (opts.signal?.aborted) throw new TaskStoppedError(task);
      let polled: string | null;
      try {
        polled = await poll();
        lostSince = null;
      } catch (err) {
        const failure = classifyPgError(err, 'following the change stream');
        if (!opts.reconnect || !isRetriable(failure)) throw failure;
        lostSince ??= Date.now();
        const waited = Date.now() - lostSince;
        if (waited > spec.options.retry.connectionMinutes * 60_000)
          throw new RetryDeadlineError(1, waited, failure);
        opts.emit({
          kind: 'phase',
          phase: 'incremental',
          status: 'running',
          detail: `lost a connection (${describeError(failure)}); reconnecting, for up to retry.connectionMinutes (${spec.options.retry.connectionMinutes})`,
        });
        await sleep(Math.min(5000, 500 + waited / 4), opts.signal);
        ({ source, control } = await opts.reconnect().catch(() => ({ source, control })));
        continue;
      }
      if (polled !== null) return polled;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    await running.stop();
  }

  /** One look at the stream: reports the lag, notices a cutover request; the outcome once caught up. */
  async function poll(): Promise<string | null> {
    const lag = await readStreamLag(control, task, spec.options.lagBoundSeconds);
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
    if (target !== null && lag.appliedLsn !== null && parseLsn(lag.appliedLsn) >= target)
      return `caught up to source position ${lag.appliedLsn} (cutover requested at ${formatLsn(target)})`;
    return null;
  }
}

/**
 * The task's objects on the source for streaming: the heartbeat table, the DDL capture (event
 * triggers need a superuser; without one the precheck's ddl-capture alert was acknowledged and
 * schema changes are made on the destination first; it also adds tables created later in a
 * schema the task takes whole to the publication), and the publication over the selected
 * tables and those two. Idempotent.
 */
export async function prepareStreamSource(
  source: Client,
  spec: TaskSpec,
  tables: SelectedTable[],
): Promise<void> {
  await ensureHeartbeatTable(source, spec.name);
  const { rows } = await source.query<{ su: boolean }>(
    `SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user`,
  );
  if (rows[0]?.su) {
    // A task without include takes every user schema, those created later too.
    const scope = spec.objects.include
      ? [...new Set([...spec.objects.include.map((i) => i.schema), ...tables.map((t) => t.schema)])]
      : { allBut: (spec.objects.exclude ?? []).filter((e) => !e.tables).map((e) => e.schema) };
    await installDdlCapture(source, spec.name, scope, {
      publication: publicationName(spec.name),
      rule: newTableRule(spec.objects),
    });
  }
  await ensurePublication(source, spec.name, tables);
}

async function ensureTopic(kafka: KafkaClientConfig, topic: string): Promise<void> {
  await withKafkaAdmin(kafka, (admin) => admin.ensureTopics([{ name: topic, partitions: 1 }]));
}

async function startInProcess(opts: IncrementalPhaseOptions): Promise<Running> {
  const { spec } = opts;
  const dst = resolveEndpoint(spec.destination, 'destination');
  const abort = new AbortController();
  let failure: Error | null = null;
  const newApplier = () =>
    changeApplier(
      { spec, group: opts.group, targets: opts.targets, topicPrefix: opts.prefix },
      opts.kafka,
      new RegistryClient(opts.registryUrl),
      () => connect(dst, 'destination', { applicationName: 'pgferry applier' }),
    );
  let applier = newApplier();
  await applier.start();
  // A lost destination fails the applier with a retriable error: a new one takes over from the
  // stored offsets (as the supervisor restarts a child), within retry.connectionMinutes.
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
  const streaming = runStreamCapture({
    task: spec.name,
    source: resolveEndpoint(spec.source, 'source'),
    destination: dst,
    tables: opts.tables,
    objects: spec.objects,
    kafka: opts.kafka,
    registryUrl: opts.registryUrl,
    prefix: opts.prefix,
    partitions: opts.partitions,
    stop: abort.signal,
    retryWindowMs: spec.options.retry.connectionMinutes * 60_000,
    wholeTransactions: spec.options.consistency === 'transactional',
    onProgress: (p) => opts.emit({ kind: 'stream', ...p }),
    onSchemaChange: (e) => opts.emit({ kind: 'schema-change', ...e }),
    onNewTable: (e) => opts.emit({ kind: 'new-table', ...e }),
  }).then(
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

function startChildren(opts: IncrementalPhaseOptions, processes: ChildProcessesOptions): Running {
  const { spec } = opts;
  const common = { spec, kafka: processes.kafka, registryUrl: opts.registryUrl, topicPrefix: opts.prefix };
  const streamConfig = join(processes.dir, 'stream.json');
  const applierConfig = join(processes.dir, 'applier.json');
  const applier = superviseChild(spec, processes, opts.emit, {
    name: 'applier',
    entry: processes.applierEntry,
    kind: 'service',
    file: applierConfig,
    config: { ...common, role: 'applier', mode: 'changes', group: opts.group, targets: opts.targets },
  });
  const capture = superviseChild(spec, processes, opts.emit, {
    name: 'capture',
    entry: processes.captureEntry,
    kind: 'service',
    file: streamConfig,
    config: { ...common, role: 'stream', partitions: opts.partitions, tables: opts.tables },
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
