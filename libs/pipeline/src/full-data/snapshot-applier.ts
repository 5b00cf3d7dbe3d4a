import type { Client } from 'pg';
import type { Consumer, Kafka } from 'kafkajs';
import { DataError, PgferryError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import { PgRowApplier, type TargetTable } from '../apply/pg-row-applier';
import { copyLine } from '../apply/copy-text';
import { AvroCopyDecoder, CopyTextSink } from '../codec/avro-copy-decoder';
import { RecordDecoder } from '../codec/record-decoder';
import type { RegistryClient } from '../codec/registry-client';
import { readOffsets } from '../control/control-store';
import { PIPELINE_SESSION_SQL } from '../session';

export interface ApplierTarget {
  topic: string;
  schema: string;
  table: string;
  key: string[];
}

/**
 * How the appliers fetch: up to 4 MB per partition and 16 MB per request, waiting at most 200 ms
 * for data, so batches are large under load and an idle topic answers quickly.
 */
export const APPLIER_FETCH = {
  maxWaitTimeInMs: 200,
  maxBytesPerPartition: 4 * 1024 * 1024,
  maxBytes: 16 * 1024 * 1024,
} as const;

export interface ApplierOptions {
  kafka: Kafka;
  registry: RegistryClient;
  /** A destination connection for this applier alone (it holds transactions open). */
  destination: Client;
  group: string;
  targets: ApplierTarget[];
  onApplied?: (target: ApplierTarget, rows: number) => void;
}

/**
 * Consumes the table topics as one consumer group and applies each fetched batch in one
 * destination transaction together with its offset (pgferry.offsets). On start and after every
 * rebalance it skips what the destination already holds: records below the stored offset are
 * never applied twice, whatever offset Kafka hands out. Kafka offsets are committed too, after
 * the destination commit, for monitoring only.
 */
export class SnapshotApplier {
  private consumer: Consumer;
  private applied = new Map<string, bigint>();
  private failure: Error | null = null;
  private readonly decoder: RecordDecoder;
  private readonly copyDecoder: AvroCopyDecoder;
  private readonly applier: PgRowApplier;
  private readonly byTopic: Map<string, ApplierTarget>;

  constructor(private readonly opts: ApplierOptions) {
    this.consumer = opts.kafka.consumer({ groupId: opts.group, ...APPLIER_FETCH });
    this.decoder = new RecordDecoder(opts.registry);
    this.copyDecoder = new AvroCopyDecoder(opts.registry);
    this.applier = new PgRowApplier(opts.destination);
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Next offsets the destination holds, per "topic:partition". */
  get positions(): ReadonlyMap<string, bigint> {
    return this.applied;
  }

  async start(): Promise<void> {
    await this.opts.destination.query(PIPELINE_SESSION_SQL);
    this.applied = await readOffsets(this.opts.destination, this.opts.group, [...this.byTopic.keys()]);
    await this.consumer.connect();
    for (const topic of this.byTopic.keys()) await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || this.failure) return;
        const target = this.byTopic.get(batch.topic)!;
        const key = `${batch.topic}:${batch.partition}`;
        const from = this.applied.get(key) ?? 0n;
        const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
        if (fresh.length === 0) {
          if (batch.messages.length) resolveOffset(batch.messages[batch.messages.length - 1].offset);
          return;
        }
        try {
          // Rows go straight from Avro to COPY text; a record the fast path does not take (one
          // with a "before" image) goes through RecordDecoder, in its place in the batch.
          const sink = new CopyTextSink();
          let columns: string[] | null = null;
          for (const m of fresh) {
            if (!m.value) continue;
            const where = `${batch.topic}/${batch.partition}@${m.offset}`;
            const id = m.value.length >= 5 ? m.value.readInt32BE(1) : -1;
            if (m.value[0] === 0 && id >= 0 && !this.copyDecoder.ready(id)) await this.copyDecoder.load(id);
            let op: string;
            let cols: string[];
            const fast = this.copyDecoder.decodeInto(m.value, sink);
            if (fast) {
              op = fast.op;
              cols = fast.plan.columns;
            } else {
              const change = await this.decoder.decode(m.value);
              op = change.op;
              cols = change.columns;
              if (!change.after) throw new DataError(`a "${op}" record without a row at ${where}`);
              sink.line(copyLine(change.after));
            }
            if (op !== 'r' && op !== 'c')
              throw new DataError(`unexpected op "${op}" in the full-data phase at ${where}`);
            if (columns && cols !== columns && cols.join('\u0000') !== columns.join('\u0000'))
              throw new DataError(
                `the columns of ${quoteQualified(target.schema, target.table)} changed within one batch`,
              );
            columns = cols;
          }
          const rows = sink.rows;
          const last = BigInt(fresh[fresh.length - 1].offset) + 1n;
          const t: TargetTable = {
            schema: target.schema,
            table: target.table,
            columns: columns ?? [],
            key: target.key,
          };
          await this.applier.applyCopyText(t, sink.take(), rows, {
            group: this.opts.group,
            topic: batch.topic,
            partition: batch.partition,
            nextOffset: last,
          });
          this.applied.set(key, last);
          resolveOffset(fresh[fresh.length - 1].offset);
          // Kafka's committed offsets follow the destination's, for monitoring tools only.
          await this.consumer.commitOffsets([
            { topic: batch.topic, partition: batch.partition, offset: last.toString() },
          ]);
          this.opts.onApplied?.(target, rows);
          await heartbeat();
        } catch (err) {
          this.failure = err instanceof Error ? err : new PgferryError(String(err));
          throw err;
        }
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}
