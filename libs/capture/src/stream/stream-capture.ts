import type { Client } from 'pg';
import {
  ConnectionError,
  describeError,
  PgferryError,
  retry,
  retryDeadlines,
  sleep,
  type Logger,
  type RetryWindows,
  type TaskSpec,
  withTimeout,
} from '@pgferry/core';
import {
  classifyPgError,
  connect,
  listTables,
  newTableRule,
  quoteQualified,
  takesNewTable,
  type Endpoint,
  type NewTableRule,
  type SelectedTable,
  formatLsn,
  parseLsn,
  type Lsn,
  tableKey,
  PIPELINE_SESSION_SQL,
} from '@pgferry/pg';
import {
  RegistryClient,
  type RegistryTlsOptions,
  heartbeatTopic,
  tableTopic,
  transactionsTopic,
  TransactionRecords,
  HeartbeatRecords,
} from '@pgferry/avro';
import { readSourceWal, SlotInvalidatedError } from './pg-slot-wal';
import { ChangePublisher, type PublishedTable } from './change-publisher';
import type { RelationInfo } from '../change-event';
import { startHeartbeat } from './pg-heartbeat';
import { publicationName } from './pg-publication';
import { PgStreamReader } from './pg-stream-reader';
import {
  addStreamTable,
  ControlStore,
  readGroupOffsets,
  readStreamTables,
  recordStartOffsets,
  applierGroup,
  writeCaptureReport,
  type StreamMark,
} from '@pgferry/control';
import { KafkaProducer, withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import { applyDdlOnce } from '../ddl/pg-ddl-applier';
import { seenIdentity } from '../run-identity';
import { DDL_SCHEMA, type DdlEvent } from '../ddl/pg-ddl-capture';

export interface StreamCaptureOptions {
  task: string;
  source: Endpoint;
  destination: Endpoint;
  tables: SelectedTable[];
  /** The task's selection: a captured statement on a renamed schema or table is refused. */
  objects: TaskSpec['objects'];
  /** options.schemaChanges.role: the destination role captured statements run as (see DdlTarget). */
  schemaChangeRole?: string;
  kafka: KafkaClientConfig;
  /** The registry; user and password in it are sent as HTTP basic auth. */
  registryUrl: string;
  /** The registry's CA (an https registry with a private CA). */
  registryTls?: RegistryTlsOptions;
  prefix: string;
  partitions: number;
  /** Ends the stream: the last confirmed position is reported and the slot released. */
  stop: AbortSignal;
  /**
   * How long a run of retriable failures is retried: lost connections (source, destination,
   * broker restarts) for connectionMinutes, the rest for otherMinutes (options.retry).
   */
  retry: RetryWindows;
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
  /** A table the task did not start with (created, or renamed, on the source) whose rows the stream now carries. */
  onNewTable?: (e: { table: string; topic: string }) => void;
}

/** The longest the capture waits for its report of the position before dropping its connections. */
const REPORT_TIMEOUT_MS = 20_000;

/** An attempt that streamed this long before failing starts a new retry window. */
const HEALTHY_RUN_MS = 60_000;

/**
 * The streaming part of the capture (DESIGN phase 5): reads the task's slot from its confirmed
 * position, publishes every change of the selected tables (ChangePublisher: confirmed to the
 * slot only after Kafka acknowledged it), beats the heartbeat table, and reports its position
 * and stream marks to the destination about once a second, so the controller can tell the lag
 * and when the destination holds everything up to a source position. Runs until `stop`;
 * retriable failures (a source or broker restart) are retried from the last confirmed position
 * within `retry`'s windows, anything else ends it with the error.
 */
export async function runStreamCapture(opts: StreamCaptureOptions): Promise<void> {
  // The destination may be restarting as the capture starts: read the task within the window.
  // A connection lost between connecting and reading is retried like a refused one (a driver
  // error is retried only once classified).
  // This source and this Kafka must be the task run's (a mismatch is fatal, not retried).
  const { task, run } = await retry(
    async () => {
      const control = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
      let source: Client | null = null;
      try {
        const store = new ControlStore(control, opts.task);
        const task = await store.getTask();
        source = await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
        return { task, run: await store.checkRun(await seenIdentity(source, opts.kafka)) };
      } catch (err) {
        throw classifyPgError(err, `reading task ${opts.task} from the destination`);
      } finally {
        await control.end().catch(() => undefined);
        await source?.end().catch(() => undefined);
      }
    },
    {
      ...retryDeadlines(opts.retry),
      signal: opts.stop,
      onRetry: (err, attempt, delayMs) =>
        opts.logger?.warn(
          { err: describeError(err), attempt, retryInMs: Math.round(delayMs) },
          'reading the task from the destination failed; retrying',
        ),
    },
  );
  if (!task?.slotName || !task.consistentLsn)
    throw new PgferryError(
      `task ${opts.task} has no replication slot recorded on the destination; the full-data phase creates it: run migrate from the start`,
    );
  let startLsn = parseLsn(task.consistentLsn);
  const producer = new KafkaProducer(opts.kafka);
  await producer.connect();
  const heartbeat = startHeartbeat(opts.source, opts.task, {
    intervalMs: opts.heartbeatIntervalMs ?? 1000,
    logger: opts.logger,
  });
  try {
    // Each attempt streams from the last confirmed position; one that streamed for a while
    // before it failed starts a new retry window.
    await retry(
      async () => {
        startLsn = await streamOnce(opts, run.runId, producer, startLsn, (lsn) => (startLsn = lsn));
      },
      {
        ...retryDeadlines(opts.retry),
        initialDelayMs: 500,
        maxDelayMs: 15_000,
        resetAfterMs: HEALTHY_RUN_MS,
        signal: opts.stop,
        onRetry: (err, attempt, delayMs) =>
          opts.logger?.warn(
            { err: describeError(err), attempt, from: formatLsn(startLsn), retryInMs: Math.round(delayMs) },
            'stream failed; resuming from the last confirmed position',
          ),
      },
    ).catch((err) => {
      if (!opts.stop.aborted) throw err;
    });
  } finally {
    await heartbeat.stop();
    await producer.close().catch(() => undefined);
  }
}

/** One connection's worth of streaming; returns the confirmed position when stopped. */
async function streamOnce(
  opts: StreamCaptureOptions,
  runId: string,
  producer: KafkaProducer,
  startLsn: Lsn,
  onConfirmed: (lsn: Lsn) => void,
): Promise<Lsn> {
  const source = await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
  // The position queries get their own connection: the publisher's describes use `source`.
  let position: Client | null = null;
  let report: Client | null = null;
  let reporter: NodeJS.Timeout | null = null;
  const slot = `pgferry_${opts.task}`;
  /** Set when the source invalidated the slot: the stream stops and the capture fails with it. */
  let invalidated: SlotInvalidatedError | null = null;
  const reader = new PgStreamReader({
    endpoint: opts.source,
    slot,
    publication: publicationName(opts.task),
    startLsn,
    spoolDir: opts.spoolDir,
    logger: opts.logger,
  });
  let reporting: Promise<void> = Promise.resolve();
  try {
    await source.query(PIPELINE_SESSION_SQL);
    // A slot the source invalidated while no capture ran cannot be streamed again (START_REPLICATION
    // would fail with "can no longer get changes"): say so, and how to start over.
    const before = await readSourceWal(source, slot);
    if (before.slot?.walStatus === 'lost')
      throw new SlotInvalidatedError(opts.task, slot, before.slot.maxSlotWalKeepSizeBytes);
    const tables: PublishedTable[] = opts.tables.map((t) => ({
      schema: t.schema,
      table: t.table,
      topic: tableTopic(opts.prefix, t.schema, t.table),
      key: tableKey(t),
      ...(t.operations ? { operations: t.operations } : {}),
    }));
    // Tables the stream gained after the task started, as an earlier run recorded them.
    const control = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
    const gained = await readStreamTables(control, opts.task).finally(() => control.end());
    const topics = new Set(tables.map((t) => t.topic));
    for (const t of gained) if (!topics.has(t.topic)) tables.push(t);
    const rule = newTableRule(opts.objects);
    const startOffsets = await withKafkaAdmin(opts.kafka, (admin) =>
      admin.topicEnds(tables.map((t) => t.topic)),
    );
    const registry = new RegistryClient(opts.registryUrl, opts.registryTls);
    const transactions = {
      topic: transactionsTopic(opts.prefix),
      records: new TransactionRecords(registry, transactionsTopic(opts.prefix)),
    };
    await transactions.records.ready();
    const heartbeatRecords = {
      task: opts.task,
      topic: heartbeatTopic(opts.prefix),
      records: new HeartbeatRecords(registry, heartbeatTopic(opts.prefix), opts.prefix),
    };
    await heartbeatRecords.records.ready();
    let mark: StreamMark | null = null;
    let marked: Lsn | null = null;
    const publisher = new ChangePublisher({
      runId,
      producer,
      registry,
      source,
      transactions,
      heartbeat: heartbeatRecords,
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
      ddl: { task: opts.task, apply: (event, ends) => applySchemaChange(opts, source, rule, event, ends) },
      addTable: (relation) => addNewTable(opts, source, relation),
      wholeTransactions: opts.wholeTransactions,
    });
    const record = async () => {
      report ??= await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
      position ??= await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
      const wal = await readSourceWal(position, slot);
      if (wal.slot?.walStatus === 'lost' && !invalidated) {
        invalidated = new SlotInvalidatedError(opts.task, slot, wal.slot.maxSlotWalKeepSizeBytes);
        void reader.stop();
      }
      const current = mark as StreamMark | null;
      const fresh = current && current.lsn !== marked ? current : null;
      await writeCaptureReport(
        report,
        opts.task,
        {
          sourceLsn: wal.currentLsn,
          capturedLsn: reader.confirmedLsn,
          slot: wal.slot,
          captureLagMs: publisher.captureLagMs,
          published: publisher.published,
          ...(tables.some((t) => t.operations) ? { skipped: { ...publisher.skipped } } : {}),
        },
        fresh,
      );
      if (fresh) marked = fresh.lsn;
      opts.onProgress?.({
        capturedLsn: formatLsn(reader.confirmedLsn),
        published: publisher.published,
        captureLagMs: publisher.captureLagMs,
      });
    };
    const tick = async () => {
      try {
        // A connection gone silent (no answer, never closed) would hold every later report.
        await withTimeout(
          record(),
          REPORT_TIMEOUT_MS,
          () => new ConnectionError(`no answer in ${REPORT_TIMEOUT_MS / 1000} s`),
        );
      } catch (err) {
        // Only the lag display suffers; the stream itself goes on and reports any real loss.
        opts.logger?.warn({ err: describeError(err) }, 'could not record the stream position');
        // Not awaited: the end of a silent connection would wait for ever.
        void report?.end().catch(() => undefined);
        void position?.end().catch(() => undefined);
        report = position = null;
      }
    };
    reporter = setInterval(() => {
      reporting = reporting.then(tick);
    }, opts.reportIntervalMs ?? 1000);
    const stopping = () => void reader.stop();
    opts.stop.addEventListener('abort', stopping, { once: true });
    try {
      if (!opts.stop.aborted) await reader.run(publisher);
    } finally {
      opts.stop.removeEventListener('abort', stopping);
    }
    clearInterval(reporter);
    reporter = null;
    await reporting;
    await tick();
    if (invalidated) throw invalidated;
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
  source: Client,
  rule: NewTableRule,
  event: DdlEvent,
  ends: ReadonlyMap<string, bigint>,
): Promise<void> {
  const client = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture ddl' });
  try {
    const group = applierGroup(opts.task);
    for (let waited = 0; ; waited += 100) {
      if (opts.stop.aborted)
        throw new PgferryError('stopped while waiting to apply a schema change', { retriable: true });
      const applied = new Map(
        (await readGroupOffsets(client, group)).map((o) => [`${o.topic}:${o.partition}`, o.nextOffset]),
      );
      if ([...ends].every(([k, end]) => (applied.get(k) ?? 0n) >= end)) break;
      if (waited > 0 && waited % 30_000 === 0)
        opts.logger?.warn(
          { statement: event.command, waitedMs: waited },
          'waiting for the applier before a schema change',
        );
      await sleep(100, opts.stop);
    }
    const ran = await applyDdlOnce(client, opts.task, event, {
      objects: opts.objects,
      role: opts.schemaChangeRole,
    });
    opts.logger?.info(
      { tag: event.tag, statement: event.command, ran },
      'schema change applied on the destination',
    );
    const warning = await newTablesWarning(source, opts.task, rule, event);
    if (warning) opts.logger?.warn({ statement: event.command }, warning);
    opts.onSchemaChange?.({ tag: event.tag, statement: event.command, warning });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A table whose changes the stream carries but the task did not start with: created on the
 * source in a schema the task takes whole and added to the publication by the DDL capture's
 * trigger in the same transaction (see installDdlCapture), so the stream holds every row it ever
 * had, after the statement that created it; or a streamed table renamed on the source (the
 * statement was carried to the destination), whose changes now come under its new name. Either
 * way it is in the task's publication now. Its topic is created, and it is recorded in
 * pgferry.stream_tables, which the appliers follow. Tables outside the publication (the
 * heartbeat table, a table the task no longer selects) are passed over.
 */
async function addNewTable(
  opts: StreamCaptureOptions,
  source: Client,
  relation: RelationInfo,
): Promise<PublishedTable | null> {
  if (relation.schema === DDL_SCHEMA) return null;
  const published = await source.query(
    `SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
      WHERE p.pubname = $1 AND pr.prrelid = to_regclass($2)`,
    [publicationName(opts.task), quoteQualified(relation.schema, relation.table)],
  );
  if (!published.rowCount) return null;
  const info = (await listTables(source, 'describing a table new to the stream')).find(
    (t) => t.schema === relation.schema && t.table === relation.table,
  );
  // Dropped again since: its changes up to the drop have nowhere to go on the destination either.
  if (!info) return null;
  const table: PublishedTable = {
    schema: info.schema,
    table: info.table,
    topic: tableTopic(opts.prefix, info.schema, info.table),
    key: info.primaryKey.length ? info.primaryKey : info.uniqueNotNullKey,
  };
  // Created like the task's other table topics (retention, max.message.bytes, replication:
  // libs/task task-topics.ts chose them for the run).
  await withKafkaAdmin(opts.kafka, async (admin) => {
    const like = await admin.specLike(opts.tables.map((t) => tableTopic(opts.prefix, t.schema, t.table)));
    await admin.ensureTopics([{ name: table.topic, partitions: opts.partitions, ...like }]);
  });
  // The run's records of the topic begin at its end now (on real Kafka a topic may hold an
  // older run's): recorded before the table is listed for the appliers and before its first record.
  const ends = await withKafkaAdmin(opts.kafka, (admin) => admin.topicEnds([table.topic]));
  const control = await connect(opts.destination, 'destination', { applicationName: 'pgferry capture' });
  try {
    await recordStartOffsets(control, opts.task, applierGroup(opts.task), ends);
    await addStreamTable(control, opts.task, table);
  } finally {
    await control.end().catch(() => undefined);
  }
  const name = quoteQualified(table.schema, table.table);
  opts.logger?.info({ table: name, topic: table.topic }, 'streaming a table new to the task');
  opts.onNewTable?.({ table: name, topic: table.topic });
  return table;
}

/**
 * Tables the statement created that the stream does not carry (other than partitions of a
 * streamed table, whose rows come through their root): the statement ran on the destination,
 * but their rows will not follow. Says which, why, and what to do, instead of leaving an empty
 * table to be found after cutover. Read on the source, where the trigger added the tables the
 * stream carries to the publication.
 */
async function newTablesWarning(
  source: Client,
  task: string,
  rule: NewTableRule,
  event: DdlEvent,
): Promise<string | null> {
  if (!/^(CREATE TABLE|CREATE TABLE AS|SELECT INTO)$/.test(event.tag) || !event.objects.length) return null;
  const { rows } = await source.query<{ schema: string; table: string; unlogged: boolean }>(
    `SELECT n.nspname AS schema, c.relname AS table, c.relpersistence = 'u' AS unlogged
       FROM unnest($1::text[]) AS o(name)
       JOIN pg_class c ON c.oid = to_regclass(o.name) JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                         WHERE p.pubname = $2 AND pr.prrelid = c.oid)`,
    [event.objects, publicationName(task)],
  );
  if (!rows.length) return null;
  const why = rows.map((r) => {
    const name = quoteQualified(r.schema, r.table);
    if (!takesNewTable(rule, r.schema, r.table))
      return `${name} is not in the task's selection (the task takes its schema only with a list of tables, a rename or an exclude)`;
    if (r.unlogged) return `${name} is unlogged, and logical decoding does not carry unlogged tables`;
    return `${name} had no primary key when it was created, and streaming it would make UPDATE and DELETE on it fail on the source`;
  });
  return `${rows.map((r) => quoteQualified(r.schema, r.table)).join(', ')} was created on the source after task ${task} started: the statement ran on the destination, but the table's rows are not streamed (${why.join('; ')}). Move it with a task of its own before cutover: a spec that selects it, with options.conflictMode: ignore (the table exists on the destination now) and migrationTypes.incremental to keep it in step`;
}
