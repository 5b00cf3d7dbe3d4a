import type { Client } from 'pg';
import type { Consumer, ConsumerConfig, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { DataError, PgferryError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import type { OffsetMark, TargetTable } from '../apply/pg-row-applier';
import { APPLIER_FETCH, type ApplierTarget } from '../full-data/snapshot-applier';
import { RecordDecoder, type DecodedChange } from '../codec/record-decoder';
import type { RegistryClient } from '../codec/registry-client';
import { readOffsets, readStreamPositions, storeOffset } from '../control/control-store';
import { notAfter, STREAM_POSITION_HEADER } from '../cdc/stream-position';
import { PIPELINE_SESSION_SQL } from '../session';
import { Throttle, type ThrottleLimits } from '../throttle/throttle';
import { PgChangeApplier, type ChangeApplyCounts } from './pg-change-applier';

export interface TopicApplierOptions {
  kafka: Kafka;
  registry: RegistryClient;
  /** Opens a destination connection; the applier keeps one per concurrently applied partition. */
  connect: () => Promise<Client>;
  group: string;
  targets: ApplierTarget[];
  /** Partitions applied at the same time, each on its own connection (default 2). */
  concurrency?: number;
  throttle?: ThrottleLimits;
  /**
   * strict (default): a record that cannot be applied stops the applier. dead-letter: it goes
   * to `deadLetterTopic` with the reason in its headers, is counted, and the applier goes on.
   */
  onError?: 'strict' | 'dead-letter';
  deadLetterTopic?: string;
  consumer?: Partial<ConsumerConfig>;
  onApplied?: (target: ApplierTarget, counts: ChangeApplyCounts) => void;
  onDeadLetter?: (target: ApplierTarget, offset: string, reason: string) => void;
}

interface Lane {
  client: Client;
  changes: PgChangeApplier;
}

interface Decoded {
  message: KafkaMessage;
  /** Null for a tombstone, or a change already applied (sent again after a capture restart). */
  change: DecodedChange | null;
  /** The change's stream position (pgferry.pos header), when it has one and is new. */
  pos: Buffer | null;
}

/**
 * Consumes the table topics as one consumer group and applies every record kind (snapshot rows,
 * changes, truncates) through PgChangeApplier: reduced per key and applied in bulk; tombstones
 * only advance the offset. Each run of records is one destination transaction together with its next
 * offset in pgferry.offsets, and records below the stored offset are skipped after a restart or
 * rebalance, so every record takes effect exactly once. Partitions are applied in parallel, each
 * on its own connection; within a partition records keep their order, so each row's changes do.
 */
export class TopicApplier {
  private consumer: Consumer;
  private producer: Producer | null = null;
  private readonly decoder: RecordDecoder;
  private readonly byTopic: Map<string, ApplierTarget>;
  private readonly throttle: Throttle;
  private readonly free: Lane[] = [];
  private readonly lanes: Lane[] = [];
  private waiting: Array<(lane: Lane) => void> = [];
  private applied = new Map<string, bigint>();
  private streamPos = new Map<string, Buffer>();
  /** Partitions applied since Kafka's offsets were last committed, and when that was. */
  private readonly uncommitted = new Set<string>();
  private lastKafkaCommit = 0;
  private failure: Error | null = null;
  deadLettered = 0;

  constructor(private readonly opts: TopicApplierOptions) {
    this.consumer = opts.kafka.consumer({
      groupId: opts.group,
      ...APPLIER_FETCH,
      ...opts.consumer,
    });
    this.decoder = new RecordDecoder(opts.registry);
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
    this.throttle = new Throttle(opts.throttle ?? {});
    if (opts.onError === 'dead-letter' && !opts.deadLetterTopic)
      throw new PgferryError('onError dead-letter needs a deadLetterTopic');
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Next offsets the destination holds, per "topic:partition". */
  get positions(): ReadonlyMap<string, bigint> {
    return this.applied;
  }

  async start(): Promise<void> {
    const concurrency = Math.max(1, this.opts.concurrency ?? 2);
    for (let i = 0; i < concurrency; i++) {
      const client = await this.opts.connect();
      await client.query(PIPELINE_SESSION_SQL);
      const lane = { client, changes: new PgChangeApplier(client) };
      this.lanes.push(lane);
      this.free.push(lane);
    }
    this.applied = await readOffsets(this.lanes[0].client, this.opts.group, [...this.byTopic.keys()]);
    this.streamPos = await readStreamPositions(this.lanes[0].client, this.opts.group, [
      ...this.byTopic.keys(),
    ]);
    if (this.opts.onError === 'dead-letter') {
      this.producer = this.opts.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await this.producer.connect();
    }
    await this.consumer.connect();
    for (const topic of this.byTopic.keys()) await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: concurrency,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || this.failure) return;
        const key = `${batch.topic}:${batch.partition}`;
        const from = this.applied.get(key) ?? 0n;
        const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
        if (fresh.length === 0) {
          if (batch.messages.length) resolveOffset(batch.messages[batch.messages.length - 1].offset);
          return;
        }
        const lane = await this.lane();
        try {
          const target = this.byTopic.get(batch.topic)!;
          const decoded: Decoded[] = [];
          let last = this.streamPos.get(key);
          for (const m of fresh) {
            const header = m.headers?.[STREAM_POSITION_HEADER];
            const pos = Buffer.isBuffer(header) && header.length === 12 ? header : null;
            if (pos && notAfter(pos, last)) {
              // Sent again by a restarted capture: applied already, only the offset moves.
              decoded.push({ message: m, change: null, pos: null });
              continue;
            }
            if (pos) last = pos;
            decoded.push({ message: m, change: m.value ? await this.decoder.decode(m.value) : null, pos });
          }
          for (const run of runs(decoded)) {
            await this.applyRun(lane, target, batch.topic, batch.partition, run);
            const last = run[run.length - 1].message.offset;
            this.applied.set(key, BigInt(last) + 1n);
            const pos = lastPosition(run);
            if (pos) this.streamPos.set(key, pos);
            resolveOffset(last);
            await heartbeat();
          }
          await this.commitToKafka(key);
        } catch (err) {
          this.failure = err instanceof Error ? err : new PgferryError(String(err));
          throw err;
        } finally {
          this.release(lane);
        }
      },
    });
  }

  private async applyRun(
    lane: Lane,
    target: ApplierTarget,
    topic: string,
    partition: number,
    run: Decoded[],
  ) {
    const mark: OffsetMark = {
      group: this.opts.group,
      topic,
      partition,
      nextOffset: BigInt(run[run.length - 1].message.offset) + 1n,
      streamPos: lastPosition(run),
    };
    const changes = run.map((d) => d.change).filter((c): c is DecodedChange => c !== null);
    const bytes = run.reduce((n, d) => n + (d.message.value?.length ?? 0), 0);
    await this.throttle.take(changes.length, bytes);
    try {
      // Not inside onApplied?.(...): an optional call does not evaluate its arguments.
      const counts = await this.applyChanges(lane, target, changes, mark);
      this.opts.onApplied?.(target, counts);
    } catch (err) {
      if (this.opts.onError !== 'dead-letter' || !(err instanceof DataError)) throw err;
      if (run.length === 1) return this.deadLetter(lane, target, run[0], mark, err);
      // Find the poison record: apply the run one record at a time.
      for (const one of run) await this.applyRun(lane, target, topic, partition, [one]);
    }
  }

  private async applyChanges(
    lane: Lane,
    target: ApplierTarget,
    changes: DecodedChange[],
    mark: OffsetMark,
  ): Promise<ChangeApplyCounts> {
    const columns = changes.find((c) => c.after ?? c.before)?.columns ?? [];
    const t: TargetTable = { schema: target.schema, table: target.table, columns, key: target.key };
    if (changes.length === 0) {
      await storeOffset(lane.client, mark.group, mark.topic, mark.partition, mark.nextOffset, mark.streamPos);
      return { upserted: 0, deleted: 0, truncated: 0, skipped: 0 };
    }
    return lane.changes.apply(t, changes, mark);
  }

  /** Parks one record with the reason and moves the stored offset past it, atomically enough:
   * the record is in the dead-letter topic (acknowledged) before the offset moves. */
  private async deadLetter(lane: Lane, target: ApplierTarget, d: Decoded, mark: OffsetMark, err: Error) {
    await sendToDeadLetter(this.producer!, this.opts.deadLetterTopic!, d.message, err.message, {
      topic: mark.topic,
      partition: mark.partition,
      table: quoteQualified(target.schema, target.table),
    });
    await storeOffset(lane.client, mark.group, mark.topic, mark.partition, mark.nextOffset, mark.streamPos);
    this.deadLettered++;
    this.opts.onDeadLetter?.(target, d.message.offset, err.message);
  }

  /**
   * Kafka's committed offsets follow the destination's, for monitoring tools only: about once a
   * second, for every partition applied since, instead of a broker round trip per batch.
   */
  private async commitToKafka(key: string): Promise<void> {
    this.uncommitted.add(key);
    if (Date.now() - this.lastKafkaCommit < 1000) return;
    this.lastKafkaCommit = Date.now();
    const keys = [...this.uncommitted];
    this.uncommitted.clear();
    await this.consumer.commitOffsets(
      keys.map((k) => {
        const at = k.lastIndexOf(':');
        return {
          topic: k.slice(0, at),
          partition: Number(k.slice(at + 1)),
          offset: this.applied.get(k)!.toString(),
        };
      }),
    );
  }

  private lane(): Promise<Lane> {
    const lane = this.free.pop();
    if (lane) return Promise.resolve(lane);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(lane: Lane): void {
    const next = this.waiting.shift();
    if (next) next(lane);
    else this.free.push(lane);
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
    await this.producer?.disconnect().catch(() => undefined);
    await Promise.all(this.lanes.map((l) => l.client.end().catch(() => undefined)));
  }
}

/**
 * Parks a record in the dead-letter topic (acks = all) with why and where it came from, in the
 * headers pgferry.reason, pgferry.topic, pgferry.partition, pgferry.offset and pgferry.table.
 */
export async function sendToDeadLetter(
  producer: Producer,
  deadLetterTopic: string,
  message: KafkaMessage,
  reason: string,
  from: { topic: string; partition: number; table: string },
): Promise<void> {
  await producer.send({
    topic: deadLetterTopic,
    acks: -1,
    messages: [
      {
        key: message.key,
        value: message.value,
        headers: {
          'pgferry.reason': reason,
          'pgferry.topic': from.topic,
          'pgferry.partition': String(from.partition),
          'pgferry.offset': message.offset,
          'pgferry.table': from.table,
        },
      },
    ],
  });
}

/** The stream position of the last positioned change of a run, or null when it has none. */
function lastPosition(run: Decoded[]): Buffer | null {
  for (let i = run.length - 1; i >= 0; i--) if (run[i].pos) return run[i].pos;
  return null;
}

/**
 * Splits a partition's records into runs applied as one transaction each: a new run starts where
 * the records' columns change (a schema change on the source); tombstones and truncates join the
 * run they are in.
 */
function runs(decoded: Decoded[]): Decoded[][] {
  const out: Decoded[][] = [];
  let shape: string | null = null;
  for (const d of decoded) {
    const image = d.change && (d.change.after ?? d.change.before) ? d.change.columns.join('\u0000') : null;
    if (out.length === 0 || (image !== null && shape !== null && image !== shape)) out.push([]);
    out[out.length - 1].push(d);
    if (image !== null) shape = image;
  }
  return out;
}
