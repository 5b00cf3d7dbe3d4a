import type { Client } from 'pg';
import type { Kafka, Producer } from 'kafkajs';
import {
  describeError,
  isProgrammingError,
  isRetriable,
  PgferryError,
  retry,
  RetryDeadlineError,
  sleep,
  type Logger,
  type TaskSpec,
} from '@pgferry/core';
import { connect, type Endpoint, type SelectedTable } from '@pgferry/pg';
import { RegistryClient } from '../codec/registry-client';
import { ChangePublisher, type StreamMark } from '../cdc/change-publisher';
import type { ChangeEvent } from '../cdc/change-event';
import { formatLsn, parseLsn, type Lsn } from '../cdc/lsn';
import { heartbeatLagMs, startHeartbeat } from '../cdc/pg-heartbeat';
import { publicationName } from '../cdc/pg-publication';
import { PgStreamReader } from '../cdc/pg-stream-reader';
import { ControlStore } from '../control/control-store';
import { tableKey } from '../full-data/snapshot-capture';
import { PIPELINE_SESSION_SQL } from '../session';
import { tableTopic, topicEnds, transactionsTopic } from '../topics';
import { TransactionRecords } from '../cdc/transaction-records';
import { applyDdlOnce } from '../ddl/pg-ddl-applier';
import type { DdlEvent } from '../ddl/pg-ddl-capture';
import { applierGroup, writeCaptureReport } from './stream-status';

export interface StreamCaptureOptions {
  task: string;
  source: Endpoint;
  destination: Endpoint;
  tables: SelectedTable[];
  /** The task's selection: a captured statement on a renamed schema or table is refused. */
  objects: TaskSpec['objects'];
  kafka: Kafka;
  registryUrl: string;
  prefix: string;
  partitions: number;
  /** Ends the stream: the last confirmed position is reported and the slot released. */
  stop: AbortSignal;
  /** How long a run of retriable failures (lost source, lost broker) is retried (ms). */
  retryWindowMs: number;
  heartbeatIntervalMs?: number;
  /** How often the position and a stream mark are written to the destination (ms). */
  reportIntervalMs?: number;
  spoolDir?: string;
  /** options.consistency transactional: see ChangePublisherOptions.wholeTransactions. */
  wholeTransactions?: boolean;
  logger?: Logger;
  onProgress?: (p: { capturedLsn: string; published: number; captureLagMs: number | null }) => void;
  /** Each schema change once applied on the destination, with a warning when the user must act. */
  onSchemaChange?: (e: { tag: string; statement: string; warning: string | null }) => void;
}

/** An attempt that streamed this long before failing starts a new retry window. */
const HEALTHY_RUN_MS = 60_000;

/**
 * The streaming part of the capture (DESIGN phase 5): reads the task's slot from its confirmed
 * position, publishes every change of the selected tables (ChangePublisher: confirmed to the
 * slot only after Kafka acknowledged it), beats the heartbeat table, and reports its position
 * and stream marks to the destination about once a second, so the controller can tell the lag
 * and when the destination holds everything up to a source position. Runs until `stop`;
 * retriable failures (a source or broker restart) are retried from the last confirmed position
 * within `retryWindowMs`, anything else ends it with the error.
 */
export async function runStreamCapture(opts: StreamCaptureOptions): Promise<void> {
  // The destination may be restarting as the capture starts: read the task within the window.
  const task = await retry(
    async () => {
      const control = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
      return new ControlStore(control, opts.task).getTask().finally(() => control.end());
    },
    { deadlineMs: opts.retryWindowMs, signal: opts.stop },
  );
  if (!task?.slotName || !task.consistentLsn)
    throw new PgferryError(
      `task ${opts.task} has no replication slot recorded on the destination; the full-data phase creates it: run migrate from the start`,
    );
  let startLsn = parseLsn(task.consistentLsn);
  const producer = opts.kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const heartbeat = startHeartbeat(opts.source, opts.task, {
    intervalMs: opts.heartbeatIntervalMs ?? 1000,
    logger: opts.logger,
  });
  let streakStart: number | null = null;
  let delay = 500;
  try {
    for (;;) {
      const began = Date.now();
      try {
        startLsn = await streamOnce(opts, producer, startLsn, (lsn) => (startLsn = lsn));
        return;
      } catch (err) {
        if (opts.stop.aborted) return;
        if (isProgrammingError(err) || !isRetriable(err)) throw err;
        if (Date.now() - began > HEALTHY_RUN_MS) {
          streakStart = null;
          delay = 500;
        }
        streakStart ??= began;
        if (Date.now() - streakStart > opts.retryWindowMs)
          throw new RetryDeadlineError(1, Date.now() - streakStart, err);
        opts.logger?.warn(
          { err: describeError(err), from: formatLsn(startLsn), retryInMs: delay },
          'stream failed; resuming from the last confirmed position',
        );
        await sleep(delay, opts.stop);
        delay = Math.min(delay * 2, 15_000);
        if (opts.stop.aborted) return;
      }
    }
  } finally {
    await heartbeat.stop();
    await producer.disconnect().catch(() => undefined);
  }
}

/** One connection's worth of streaming; returns the confirmed position when stopped. */
async function streamOnce(
  opts: StreamCaptureOptions,
  producer: Producer,
  startLsn: Lsn,
  onConfirmed: (lsn: Lsn) => void,
): Promise<Lsn> {
  const source = await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
  // The position queries get their own connection: the publisher's describes use `source`.
  let position: Client | null = null;
  let report: Client | null = null;
  let reporter: NodeJS.Timeout | null = null;
  const reader = new PgStreamReader({
    endpoint: opts.source,
    slot: `pgferry_${opts.task}`,
    publication: publicationName(opts.task),
    startLsn,
    spoolDir: opts.spoolDir,
    logger: opts.logger,
  });
  let reporting: Promise<void> = Promise.resolve();
  try {
    await source.query(PIPELINE_SESSION_SQL);
    const tables = opts.tables.map((t) => ({
      schema: t.schema,
      table: t.table,
      topic: tableTopic(opts.prefix, t.schema, t.table),
      key: tableKey(t),
    }));
    const startOffsets = await topicEnds(
      opts.kafka,
      tables.map((t) => t.topic),
    );
    const registry = new RegistryClient(opts.registryUrl);
    const transactions = {
      topic: transactionsTopic(opts.prefix),
      records: new TransactionRecords(registry, transactionsTopic(opts.prefix)),
    };
    await transactions.records.ready();
    let mark: StreamMark | null = null;
    let marked: Lsn | null = null;
    let captureLagMs: number | null = null;
    const publisher = new ChangePublisher({
      producer,
      registry,
      source,
      transactions,
      prefix: opts.prefix,
      sourceDb: opts.source.database,
      partitions: opts.partitions,
      tables,
      startOffsets,
      confirm: (lsn) => {
        reader.confirm(lsn);
        onConfirmed(lsn);
      },
      onCommit: (m) => (mark = m),
      ddl: { task: opts.task, apply: (event, ends) => applySchemaChange(opts, event, ends) },
      wholeTransactions: opts.wholeTransactions,
    });
    const tick = async () => {
      try {
        report ??= await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
        position ??= await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
        const { rows } = await position.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`);
        const current = mark as StreamMark | null;
        const fresh = current && current.lsn !== marked ? current : null;
        await writeCaptureReport(
          report,
          opts.task,
          {
            sourceLsn: parseLsn(rows[0].lsn),
            capturedLsn: reader.confirmedLsn,
            captureLagMs,
            published: publisher.published,
          },
          fresh,
        );
        if (fresh) marked = fresh.lsn;
        opts.onProgress?.({
          capturedLsn: formatLsn(reader.confirmedLsn),
          published: publisher.published,
          captureLagMs,
        });
      } catch (err) {
        // Only the lag display suffers; the stream itself goes on and reports any real loss.
        opts.logger?.warn({ err: describeError(err) }, 'could not record the stream position');
        await report?.end().catch(() => undefined);
        await position?.end().catch(() => undefined);
        report = position = null;
      }
    };
    reporter = setInterval(() => {
      reporting = reporting.then(tick);
    }, opts.reportIntervalMs ?? 1000);
    const processor = {
      process: (e: ChangeEvent) => {
        const lag = heartbeatLagMs(e, opts.task);
        if (lag !== null) captureLagMs = lag;
        return publisher.process(e);
      },
    };
    const stopping = () => void reader.stop();
    opts.stop.addEventListener('abort', stopping, { once: true });
    try {
      if (!opts.stop.aborted) await reader.run(processor);
    } finally {
      opts.stop.removeEventListener('abort', stopping);
    }
    clearInterval(reporter);
    reporter = null;
    await reporting;
    await tick();
    return reader.confirmedLsn;
  } finally {
    if (reporter) clearInterval(reporter);
    await reader.stop().catch(() => undefined);
    await reporting.catch(() => undefined);
    await (report as Client | null)?.end().catch(() => undefined);
    await (position as Client | null)?.end().catch(() => undefined);
    await source.end().catch(() => undefined);
  }
}

/**
 * Waits until the destination applied every record before a captured statement (its offsets
 * reach `ends`), then runs the statement there once (pgferry.ddl_applied). The stream waits
 * meanwhile, so no record in the new shape reaches the applier before the destination has it.
 */
async function applySchemaChange(
  opts: StreamCaptureOptions,
  event: DdlEvent,
  ends: ReadonlyMap<string, bigint>,
): Promise<void> {
  const client = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture ddl' });
  try {
    const group = applierGroup(opts.task);
    for (let waited = 0; ; waited += 100) {
      if (opts.stop.aborted)
        throw new PgferryError('stopped while waiting to apply a schema change', { retriable: true });
      const { rows } = await client.query<{ k: string; n: string }>(
        `SELECT topic || ':' || partition AS k, next_offset::text AS n FROM pgferry.offsets WHERE consumer_group = $1`,
        [group],
      );
      const applied = new Map(rows.map((r) => [r.k, BigInt(r.n)]));
      if ([...ends].every(([k, end]) => (applied.get(k) ?? 0n) >= end)) break;
      if (waited > 0 && waited % 30_000 === 0)
        opts.logger?.warn(
          { statement: event.command, waitedMs: waited },
          'waiting for the applier before a schema change',
        );
      await sleep(100, opts.stop);
    }
    const ran = await applyDdlOnce(client, opts.task, event, opts.objects);
    opts.logger?.info(
      { tag: event.tag, statement: event.command, ran },
      'schema change applied on the destination',
    );
    const warning = await newTablesWarning(client, opts.task, event);
    if (warning) opts.logger?.warn({ statement: event.command }, warning);
    opts.onSchemaChange?.({ tag: event.tag, statement: event.command, warning });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Tables the statement created (other than partitions of a streamed table, whose rows come
 * through their root) exist on the destination now but are not streamed: the publication and
 * the topics are those of the tables selected when the task started. Says so, and what to do,
 * instead of leaving an empty table to be found after cutover.
 */
async function newTablesWarning(client: Client, task: string, event: DdlEvent): Promise<string | null> {
  if (!/^(CREATE TABLE|CREATE TABLE AS|SELECT INTO)$/.test(event.tag) || !event.objects.length) return null;
  const { rows } = await client.query<{ name: string }>(
    `SELECT o.name FROM unnest($1::text[]) AS o(name) JOIN pg_class c ON c.oid = to_regclass(o.name)
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition`,
    [event.objects],
  );
  if (!rows.length) return null;
  const names = rows.map((r) => r.name).join(', ');
  return `${names} was created on the source after task ${task} started: the statement ran on the destination, but the table's rows are not streamed (a task streams the tables it selected when it started). Move it with a task of its own before cutover: a spec that selects it, with options.conflictMode: ignore (the table exists on the destination now) and migrationTypes.incremental to keep it in step`;
}
