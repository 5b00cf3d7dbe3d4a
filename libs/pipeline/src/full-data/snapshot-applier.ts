import type { Client } from 'pg';
import type { Consumer, Kafka } from 'kafkajs';
import { DataError, PgferryError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import { PgRowApplier, type TargetTable } from '../apply/pg-row-applier';
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
  private readonly applier: PgRowApplier;
  private readonly byTopic: Map<string, ApplierTarget>;

  constructor(private readonly opts: ApplierOptions) {
    this.consumer = opts.kafka.consumer({
      groupId: opts.group,
      maxWaitTimeInMs: 200,
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxBytes: 16 * 1024 * 1024,
    });
    this.decoder = new RecordDecoder(opts.registry);
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
          const rows: Array<Array<string | null>> = [];
          let columns: string[] | null = null;
          for (const m of fresh) {
            if (!m.value) continue;
            const change = await this.decoder.decode(m.value);
            if (change.op !== 'r' && change.op !== 'c')
              throw new DataError(
                `unexpected op "${change.op}" in the full-data phase at ${batch.topic}/${batch.partition}@${m.offset}`,
              );
            if (columns && change.columns.join('\u0000') !== columns.join('\u0000'))
              throw new DataError(
                `the columns of ${quoteQualified(target.schema, target.table)} changed within one batch`,
              );
            columns = change.columns;
            rows.push(change.after!);
          }
          const last = BigInt(fresh[fresh.length - 1].offset) + 1n;
          const t: TargetTable = {
            schema: target.schema,
            table: target.table,
            columns: columns ?? [],
            key: target.key,
          };
          await this.applier.applyRows(t, rows, {
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
          this.opts.onApplied?.(target, rows.length);
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
