import type { Client } from 'pg';
import {
  connect,
  quoteQualified,
  tableKey,
  type Endpoint,
  type SelectedTable,
  describeColumns,
  type ColumnInfo,
  PIPELINE_SESSION_SQL,
} from '@pgferry/pg';
import { PgferryError, SlabPool } from '@pgferry/core';
import { RegistryClient, RUN_HEADER, buildSchemas, TableEncoder, tableTopic } from '@pgferry/avro';
import type { CopyRows } from '@pgferry/pg';
import type { ControlStore } from '@pgferry/control';
import { KafkaProducer, PartitionedBatches, withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import { seenIdentity } from '../run-identity';
import { planChunks, type ChunkPlan } from './chunk-plan';
import { importSnapshot, readChunk } from './pg-chunk-reader';
import { SnapshotThrottle } from './snapshot-throttle';

export interface TableStream {
  table: SelectedTable;
  topic: string;
  columns: ColumnInfo[];
  key: string[];
}

export interface CaptureProgress {
  table: string;
  rows: number;
  bytes: number;
}

export interface SnapshotCaptureOptions {
  source: Endpoint;
  sourceDatabase: string;
  kafka: KafkaClientConfig;
  registry: RegistryClient;
  topicPrefix: string;
  partitions: number;
  tables: SelectedTable[];
  control: ControlStore;
  /** Exported snapshot to import; null reads each chunk under a fresh snapshot (resumed task). */
  snapshotName: string | null;
  chunkRows: number;
  workers: number;
  /** Rows per Kafka send (default 5000). */
  batchRows?: number;
  /** Compression of the record batches (default none; lz4 only where lz4IsNative). */
  compression?: 'none' | 'lz4';
  onProgress?: (p: CaptureProgress) => void;
  /**
   * options.throttle.full: the workers' shared limit, and `poll`, which brings it up to date
   * (and reports it): awaited before the first chunk, then called every second while they run.
   */
  throttle?: { limiter: SnapshotThrottle; poll: () => Promise<void> };
}

let roundRobin = 0;

/**
 * COPY rows encoded straight into the record batches of the partitions the publisher would give
 * them (keyPartition of the key, as every Kafka client's default partitioner; keyless rows round
 * robin), in their order: each value is written once, where Kafka will store it.
 */
function encodeBatches(
  encoder: TableEncoder,
  rows: CopyRows,
  tsMs: number,
  partitions: number,
  maxBatchBytes: number,
  pool: SlabPool,
  headers: ReadonlyArray<{ key: string; value: Buffer }>,
): PartitionedBatches {
  const batches = new PartitionedBatches(partitions, maxBatchBytes, roundRobin, pool, undefined, headers);
  encoder.encodeRowsFramed(rows, tsMs, false, batches);
  roundRobin = batches.roundRobin;
  return batches;
}

/**
 * Creates each table's topic and registers its schemas (idempotent), so consumers can attach
 * before the first record. Returns what the capture and the applier need per table.
 */
export async function prepareStreams(
  client: Client,
  kafka: KafkaClientConfig,
  registry: RegistryClient,
  prefix: string,
  partitions: number,
  tables: SelectedTable[],
): Promise<TableStream[]> {
  const streams: TableStream[] = [];
  for (const t of tables) {
    const key = tableKey(t);
    // A column list (objects.include[].columns) keeps the table's order; the precheck has made
    // sure it names existing columns and holds the key.
    const columns = (await describeColumns(client, t.schema, t.table, key)).filter(
      (c) => !t.columns || t.columns.includes(c.name),
    );
    streams.push({ table: t, topic: tableTopic(prefix, t.schema, t.table), columns, key });
  }
  await withKafkaAdmin(kafka, (admin) =>
    admin.ensureTopics(streams.map((s) => ({ name: s.topic, partitions }))),
  );
  return streams;
}

/** Tables whose schemas are registered at once (see runSnapshotCapture). */
const REGISTRATIONS_AT_ONCE = 8;

/**
 * The snapshot half of the full-data phase: every pending chunk is read with COPY under the
 * snapshot, encoded, and sent to its table's topic; a chunk is marked done in the control
 * schema only after Kafka acknowledged all its records, so a restarted capture re-sends only
 * unfinished chunks (the applier's upsert absorbs the records a killed attempt already sent).
 * Chunks run on `workers` connections in parallel.
 */
export async function runSnapshotCapture(
  opts: SnapshotCaptureOptions,
): Promise<{ rows: number; bytes: number; streams: TableStream[] }> {
  const setup = await connect(opts.source, 'source', { applicationName: 'pgferry capture' });
  let streams: TableStream[];
  let headers: Array<{ key: string; value: Buffer }>;
  try {
    await setup.query(PIPELINE_SESSION_SQL);
    // This source and this Kafka must be the run's, and every record carries the run's id.
    const run = await opts.control.checkRun(await seenIdentity(setup, opts.kafka));
    headers = [{ key: RUN_HEADER, value: Buffer.from(run.runId, 'latin1') }];
    streams = await prepareStreams(
      setup,
      opts.kafka,
      opts.registry,
      opts.topicPrefix,
      opts.partitions,
      opts.tables,
    );
    if (!(await opts.control.hasPlan())) {
      await setup.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      if (opts.snapshotName) await importSnapshot(setup, opts.snapshotName);
      const planned = await planChunks(setup, opts.tables, opts.chunkRows);
      await setup.query('COMMIT');
      await opts.control.storePlan(planned);
    }
  } finally {
    await setup.end().catch(() => undefined);
  }
  const byTable = new Map(streams.map((s) => [`${s.table.schema}\u0000${s.table.table}`, s]));
  // Every table's key and value schemas are registered REGISTRATIONS_AT_ONCE tables at a time:
  // one after another, each registration is a round trip to the registry before the first row.
  const encoders = new Map<string, TableEncoder>();
  let nextStream = 0;
  const registerNext = async () => {
    for (let s = streams[nextStream++]; s; s = streams[nextStream++]) {
      const schemas = buildSchemas(opts.topicPrefix, s.table.schema, s.table.table, s.columns);
      const [key, value] = await Promise.all([
        schemas.key ? opts.registry.register(`${s.topic}-key`, schemas.key) : null,
        opts.registry.register(`${s.topic}-value`, schemas.value),
      ]);
      encoders.set(
        s.topic,
        new TableEncoder(
          s.columns,
          schemas,
          { key, value },
          {
            name: opts.topicPrefix,
            db: opts.sourceDatabase,
            schema: s.table.schema,
            table: s.table.table,
          },
        ),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(REGISTRATIONS_AT_ONCE, streams.length) }, registerNext));
  const pending = await opts.control.pendingChunks<ChunkPlan>();
  const throttle = opts.throttle?.limiter ?? new SnapshotThrottle();
  const polls = opts.throttle && (await opts.throttle.poll(), pollEverySecond(opts.throttle.poll));
  let totalRows = 0;
  let totalBytes = 0;
  let next = 0;
  let failed = false;
  // Each worker has its own connection and its own idempotent producer (one request in flight
  // each), and encodes the next batch while the previous one is being acknowledged.
  const worker = async () => {
    const client = await connect(opts.source, 'source', { applicationName: 'pgferry snapshot' });
    const publisher = new KafkaProducer(opts.kafka, { framedCompression: opts.compression });
    // A batch's buffers are written again for a later batch once Kafka acknowledged its records.
    const slabs = new SlabPool(512 * 1024);
    try {
      await publisher.connect();
      await client.query(PIPELINE_SESSION_SQL);
      for (let i = next++; i < pending.length && !failed; i = next++) {
        const chunk = pending[i];
        const stream = byTable.get(`${chunk.plan.schema}\u0000${chunk.plan.table}`);
        if (!stream)
          throw new PgferryError(
            `chunk ${chunk.id} belongs to ${quoteQualified(chunk.plan.schema, chunk.plan.table)}, which is no longer selected; start a new task for a new selection`,
          );
        const encoder = encoders.get(stream.topic)!;
        const partitions = await publisher.partitionCount(stream.topic);
        await opts.control.beginChunk(chunk.id);
        let inFlight: Promise<void> = Promise.resolve();
        const result = await readChunk(
          client,
          chunk.plan,
          stream.columns.map((c) => c.name),
          opts.snapshotName,
          throttle.sending(async (rows, bytes) => {
            const count = rows.length;
            const batches = encodeBatches(
              encoder,
              rows,
              Date.now(),
              partitions,
              publisher.maxBatchBytes,
              slabs,
              headers,
            );
            await inFlight;
            inFlight = publisher.publishBatches(stream.topic, batches.batches()).then(() => {
              batches.release();
              totalRows += count;
              totalBytes += bytes;
              opts.onProgress?.({ table: chunk.sourceTable, rows: count, bytes });
            });
            // A failed send must surface here, not only at the end of the chunk.
            inFlight.catch(() => undefined);
          }),
          throttle.batchRows(opts.batchRows ?? 5000, totalRows ? totalBytes / totalRows : 0),
          stream.table.where,
          () => throttle.query(),
        );
        await inFlight;
        await opts.control.finishChunk(chunk.id, result.rows, result.bytes);
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      await publisher.close().catch(() => undefined);
      await client.end().catch(() => undefined);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.workers, pending.length)) }, worker));
  } finally {
    if (polls) clearInterval(polls);
  }
  return { rows: totalRows, bytes: totalBytes, streams };
}

/** Calls `poll` every second, never two at once; its failures are its own to report. */
function pollEverySecond(poll: () => Promise<void>): NodeJS.Timeout {
  let running = false;
  return setInterval(() => {
    if (running) return;
    running = true;
    void poll()
      .catch(() => undefined)
      .finally(() => (running = false));
  }, 1000);
}
