import type { Client } from 'pg';
import type { Consumer, ConsumerConfig, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { DataError, PgferryError } from '@pgferry/core';
import { classifyPgError, quoteQualified, PIPELINE_SESSION_SQL } from '@pgferry/pg';
import type { TargetTable } from './pg-row-applier';
import type { OffsetMark } from '@pgferry/control';
import { APPLIER_FETCH, type ApplierTarget } from './snapshot-applier';
import { RecordDecoder, type DecodedChange, notAfter, STREAM_POSITION_HEADER } from '@pgferry/avro';
import type { RegistryClient } from '@pgferry/avro';
import { readOffsets, readStreamPositions, storeOffset, storeOffsets } from '@pgferry/control';
import { Throttle, type ThrottleLimits } from './throttle';
import { PgChangeApplier, type ChangeApplyCounts } from './pg-change-applier';
import { LanePool } from './lane-pool';
import { registerKafkajsLz4 } from '@pgferry/kafka';

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

/** One partition's batch waiting for the next gathered destination transaction. */
interface Gathered {
  target: ApplierTarget;
  topic: string;
  partition: number;
  decoded: Decoded[];
  done: { resolve: () => void; reject: (err: unknown) => void };
}

/** Partitions whose batches are handed to the applier at once (kafkajs partitionsConsumedConcurrently). */
const GATHER_PARTITIONS = 64;
/** How long the first batch waits for the rest of its fetch, and the most records gathered. */
const GATHER_MS = 3;
const MAX_GATHERED = 20_000;

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
  private readonly pool = new LanePool<Lane>();
  private readonly lanes: Lane[] = [];
  private applied = new Map<string, bigint>();
  private streamPos = new Map<string, Buffer>();
  /** Partitions applied since Kafka's offsets were last committed, and when that was. */
  private readonly uncommitted = new Set<string>();
  private lastKafkaCommit = 0;
  private gathering: Gathered[] = [];
  private gatheredChanges = 0;
  private gatherTimer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  deadLettered = 0;

  constructor(private readonly opts: TopicApplierOptions) {
    registerKafkajsLz4();
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
      this.pool.add(lane);
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
      // Every partition of a fetch at once: their batches are applied together (see gather).
      partitionsConsumedConcurrently: GATHER_PARTITIONS,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (!isRunning() || isStale() || this.failure) return;
        const key = `${batch.topic}:${batch.partition}`;
        const from = this.applied.get(key) ?? 0n;
        const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
        if (fresh.length === 0) {
          if (batch.messages.length) resolveOffset(batch.messages[batch.messages.length - 1].offset);
          return;
        }
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
          await this.gather({ target, topic: batch.topic, partition: batch.partition, decoded });
          const lastOffset = fresh[fresh.length - 1].offset;
          this.applied.set(key, BigInt(lastOffset) + 1n);
          const pos = lastPosition(decoded);
          if (pos) this.streamPos.set(key, pos);
          resolveOffset(lastOffset);
          await heartbeat();
          await this.commitToKafka(key);
        } catch (err) {
          this.failure ??= err instanceof Error ? err : new PgferryError(String(err));
          throw err;
        }
      },
    });
  }

  /**
   * Adds one partition's batch to the next destination transaction and resolves once it is
   * committed. Batches that arrive together (the partitions of one fetch, within a few
   * milliseconds) share the transaction: each table's changes from every partition are applied
   * in bulk, and every partition's offset is stored in one statement, so a stream of small
   * source transactions over many partitions costs a few round trips per fetch, not per
   * partition. Up to `concurrency` such transactions run at once, each on its own connection.
   */
  private gather(part: Omit<Gathered, 'done'>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.gathering.push({ ...part, done: { resolve, reject } });
      this.gatheredChanges += part.decoded.length;
      if (this.gatheredChanges >= MAX_GATHERED) this.flushGathered();
      else this.gatherTimer ??= setTimeout(() => this.flushGathered(), GATHER_MS);
    });
  }

  private flushGathered(): void {
    if (this.gatherTimer) clearTimeout(this.gatherTimer);
    this.gatherTimer = null;
    const parts = this.gathering;
    this.gathering = [];
    this.gatheredChanges = 0;
    if (!parts.length) return;
    void (async () => {
      const lane = await this.pool.take();
      try {
        try {
          await this.applyGathered(lane, parts);
        } catch (err) {
          if (this.opts.onError !== 'dead-letter' || !(err instanceof DataError)) throw err;
          // A poison record: each partition's batch on its own, the record found and parked.
          for (const p of parts)
            for (const run of runs(p.decoded)) await this.applyRun(lane, p.target, p.topic, p.partition, run);
        }
        for (const p of parts) p.done.resolve();
      } catch (err) {
        for (const p of parts) p.done.reject(err);
      } finally {
        this.pool.give(lane);
      }
    })();
  }

  /** The gathered batches in one destination transaction, with their offsets. */
  private async applyGathered(lane: Lane, parts: Gathered[]): Promise<void> {
    const byTopic = new Map<string, Gathered[]>();
    for (const p of parts) {
      const group = byTopic.get(p.topic);
      if (group) group.push(p);
      else byTopic.set(p.topic, [p]);
    }
    let changes = 0;
    let bytes = 0;
    for (const p of parts)
      for (const d of p.decoded) {
        if (d.change) changes++;
        bytes += d.message.value?.length ?? 0;
      }
    await this.throttle.take(changes, bytes);
    const client = lane.client;
    try {
      await client.query('BEGIN');
      // Tables in one order in every transaction, so two lanes never wait on each other's
      // truncate guards in a cycle.
      for (const topic of [...byTopic.keys()].sort()) {
        const group = byTopic.get(topic)!;
        const target = group[0].target;
        const all = group.flatMap((p) => runs(p.decoded));
        const shapes = new Set(all.map((run) => shapeOf(run)).filter((s) => s !== null));
        const truncates = all.some((run) => run.some((d) => d.change?.op === 't'));
        // One statement set per table when that keeps each key's order: a key's changes are in
        // one partition. A truncate or a schema change splits it back into the partitions' runs,
        // applied one after the other (the truncate guard then orders them).
        const together = !truncates && shapes.size <= 1 ? [all.flat()] : all;
        for (const run of together) {
          const list = run.map((d) => d.change).filter((c): c is DecodedChange => c !== null);
          if (!list.length) continue;
          const columns = list.find((c) => c.after ?? c.before)?.columns ?? [];
          const t: TargetTable = { schema: target.schema, table: target.table, columns, key: target.key };
          const counts = await lane.changes.applyInTransaction(t, list, this.opts.group);
          this.opts.onApplied?.(target, counts);
        }
      }
      await storeOffsets(
        client,
        this.opts.group,
        parts.map((p) => ({
          topic: p.topic,
          partition: p.partition,
          nextOffset: BigInt(p.decoded[p.decoded.length - 1].message.offset) + 1n,
          streamPos: lastPosition(p.decoded),
        })),
      );
      await client.query('COMMIT');
      lane.changes.transactionCommitted();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      lane.changes.forgetStages();
      // A lost connection is retriable (the applier is restarted); a refused change names its table.
      throw classifyPgError(err, `applying ${changes} changes of ${byTopic.size} tables`);
    }
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

/** The columns of a run's rows ("\u0000"-joined), or null when it has no row image. */
function shapeOf(run: Decoded[]): string | null {
  const d = run.find((x) => x.change && (x.change.after ?? x.change.before));
  return d ? d.change!.columns.join('\u0000') : null;
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
