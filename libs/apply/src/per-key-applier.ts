import type { Client } from 'pg';
import { compareBytes, DataError, PgferryError } from '@pgferry/core';
import { classifyPgError, quoteQualified, PIPELINE_SESSION_SQL } from '@pgferry/pg';
import { RecordDecoder, type DecodedChange, type RegistryClient } from '@pgferry/avro';
import { readOffsets, readStreamPositions, storeOffsets, type OffsetMark } from '@pgferry/control';
import type { PartitionData, TopicPartition } from '@pgferry/kafka';
import { forEachRecordView } from '@pgferry/kafka-protocol';
import {
  APPLIER_FETCH,
  FailureLatch,
  targetTable,
  type Applier,
  type ApplierKafka,
  type ApplierTarget,
} from './applier';
import { ConsumerLoop } from './consumer-loop';
import { DeadLetters } from './dead-letter';
import { LanePool } from './lane-pool';
import { movesKey } from './change-plan';
import { PgChangeApplier, type ChangeApplyCounts } from './pg-change-applier';
import { Throttle, type ThrottleLimits } from './throttle';
import { RunRecords } from './run-records';
import { positionHeaderAt, recordViews, undecodableRecord } from './undecodable-records';

export interface PerKeyApplierOptions extends ApplierKafka {
  registry: RegistryClient;
  /** Opens a destination connection; the applier keeps one per lane. */
  connect: () => Promise<Client>;
  targets: ApplierTarget[];
  /** Destination transactions applied at the same time, each on its own connection (default 2). */
  concurrency?: number;
  /** The rate limit: fixed limits, or a Throttle shared with whoever changes them while it runs. */
  throttle?: ThrottleLimits | Throttle;
  /**
   * strict (default): a record that cannot be applied stops the applier. dead-letter: it goes
   * to `deadLetterTopic` with the reason in its headers, is counted, and the applier goes on.
   */
  onError?: 'strict' | 'dead-letter';
  deadLetterTopic?: string;
  /**
   * exclusive (default): this applier reads every partition. group: it shares them with the
   * other appliers of Kafka consumer group `group` (scaled out), fenced by offset in the destination.
   */
  membership?: 'exclusive' | 'group';
  /** Consumer group session timeout (membership group). */
  sessionTimeoutMs?: number;
  /**
   * Where applying ends, per "topic:partition" (exclusive; see ConsumerLoopOptions.until): the
   * records before it are applied, none after (replay up to a point).
   */
  until?: ReadonlyMap<string, bigint>;
  onApplied?: (target: ApplierTarget, counts: ChangeApplyCounts) => void;
  onDeadLetter?: (target: ApplierTarget, offset: string, reason: string) => void;
}

interface Lane {
  client: Client;
  changes: PgChangeApplier;
}

/**
 * One record of a partition: where it is, what it holds. Its key, value and stream position are
 * ranges of the fetched batch's bytes (`buf`), not views: a view per field was three Buffer
 * objects per change, and the garbage they made was a good part of the applier's GC time.
 */
interface Decoded {
  offset: bigint;
  buf: Buffer;
  /** buf[keyStart, keyEnd), keyStart -1 for no key; likewise the value (-1: a tombstone). */
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  /** Null for a tombstone, or a change already applied (sent again after a capture restart). */
  change: DecodedChange | null;
  /** Where the change's 12-byte stream position (pgferry.pos header) starts in buf, when it has one and is new; else -1. */
  posAt: number;
  /** With onError dead-letter: why the value does not decode (change is null); applying it throws this. */
  failure?: DataError;
}

/** One partition's records of a round. */
interface Part {
  target: ApplierTarget;
  topic: string;
  partition: number;
  decoded: Decoded[];
}

/** A stream position's length: commit LSN (8 bytes) and number in the transaction (4). */
const POSITION_BYTES = 12;

/**
 * Changes per destination transaction (larger rounds are split). Each lane holds one gathered
 * transaction decoded, and one more waits for a lane: 20,000 kept a good part of the applier's
 * heap in decoded changes; per transaction costs are a few round trips either way.
 */
const MAX_GATHERED = 10_000;

/**
 * Applies every record kind (snapshot rows, changes, truncates) of the table topics through
 * PgChangeApplier: reduced per key and applied in bulk; tombstones only advance the offset. The
 * partitions of one fetched round share destination transactions (up to 20,000 changes each),
 * each table's changes from every partition applied together and every partition's next offset
 * stored in one statement, so a stream of small source transactions over many partitions costs
 * a few round trips per round, not per partition. Up to `concurrency` transactions run at once;
 * a partition's records keep their order (its next batch waits for the previous one), so each
 * row's changes do. Records below the stored offset, and changes sent again by a restarted
 * capture (same stream position), are skipped, so every record takes effect exactly once.
 */
export class PerKeyApplier implements Applier {
  private readonly latch = new FailureLatch();
  private readonly decoder: RecordDecoder;
  private readonly byTopic: Map<string, ApplierTarget>;
  private readonly throttle: Throttle;
  private readonly pool = new LanePool<Lane>();
  private readonly lanes: Lane[] = [];
  private applied = new Map<string, bigint>();
  private streamPos = new Map<string, Buffer>();
  /** The last transaction started per "topic:partition": the next one waits for it. */
  private readonly tails = new Map<string, Promise<void>>();
  private consumer: ConsumerLoop | null = null;
  private deadLetters: DeadLetters | null = null;
  private run: RunRecords | null = null;

  constructor(private readonly opts: PerKeyApplierOptions) {
    this.decoder = new RecordDecoder(opts.registry);
    this.byTopic = new Map(opts.targets.map((t) => [t.topic, t]));
    this.throttle = opts.throttle instanceof Throttle ? opts.throttle : new Throttle(opts.throttle ?? {});
    if (opts.onError === 'dead-letter' && !opts.deadLetterTopic)
      throw new PgferryError('onError dead-letter needs a deadLetterTopic');
  }

  get error(): Error | null {
    return this.latch.error ?? this.consumer?.error ?? null;
  }

  get positions(): ReadonlyMap<string, bigint> {
    return this.applied;
  }

  /** Records parked in the dead-letter topic since start. */
  get deadLettered(): number {
    return this.deadLetters?.count ?? 0;
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
    this.run = await RunRecords.bind(this.opts.task, this.opts.kafka, this.lanes[0].client);
    if (this.opts.onError === 'dead-letter') {
      this.deadLetters = new DeadLetters(this.opts.kafka, this.opts.deadLetterTopic!);
      await this.deadLetters.connect();
    }
    this.consumer = new ConsumerLoop(
      {
        kafka: this.opts.kafka,
        group: this.opts.group,
        topics: [...this.byTopic.keys()],
        membership: this.opts.membership ?? 'exclusive',
        sessionTimeoutMs: this.opts.sessionTimeoutMs,
        fetch: APPLIER_FETCH,
        until: this.opts.until,
      },
      {
        offsets: (partitions) => this.readOffsets(partitions),
        take: (round) => this.take(round),
        drain: () => this.drain(),
      },
    );
    await this.consumer.start();
  }

  private async readOffsets(partitions: readonly TopicPartition[]): Promise<Map<string, bigint>> {
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const client = this.lanes[0].client;
    this.applied = await readOffsets(client, this.opts.group, topics);
    this.run?.requireOffsets(partitions, this.applied);
    this.streamPos = await readStreamPositions(client, this.opts.group, topics);
    return this.applied;
  }

  /**
   * Decodes a round and hands it to the lanes, each partition after its previous batch. A
   * transaction's parts are decoded only once the previous one is handed over, so at most one
   * transaction more than the lanes apply is held decoded, however large the round.
   */
  private async take(round: PartitionData[]): Promise<void> {
    let group: Part[] = [];
    let changes = 0;
    const hand = async () => {
      const lane = await this.pool.take();
      if (this.error) {
        this.pool.give(lane);
        return false;
      }
      this.dispatch(lane, group);
      group = [];
      changes = 0;
      return true;
    };
    for (const data of round) {
      const part = await this.decode(data);
      if (!part.decoded.length) continue;
      if (group.length && changes + part.decoded.length > MAX_GATHERED && !(await hand())) return;
      group.push(part);
      changes += part.decoded.length;
    }
    if (group.length) await hand();
  }

  private async decode(data: PartitionData): Promise<Part> {
    const key = `${data.topic}:${data.partition}`;
    const target = this.byTopic.get(data.topic)!;
    const from = this.applied.get(key) ?? 0n;
    const first = data.from > from ? data.from : from;
    const where = `Kafka topic ${data.topic} partition ${data.partition}`;
    const decoded: Decoded[] = [];
    // The last position applied (or met in this round): buf[at, at + 12).
    let last = this.streamPos.get(key);
    let lastAt = 0;
    /** Records whose writer schema is not fetched yet: decoded below, with a promise. */
    const later: Decoded[] = [];
    for (const b of data.batches) {
      let checked = !this.run;
      forEachRecordView(b, first, where, (r) => {
        if (!checked) this.run!.check(r, where);
        checked = true;
        const posAt = positionHeaderAt(r, where, POSITION_BYTES);
        const d: Decoded = {
          offset: BigInt(r.offset),
          buf: r.buf,
          keyStart: r.keyStart,
          keyEnd: r.keyEnd,
          valueStart: r.valueStart,
          valueEnd: r.valueEnd,
          change: null,
          posAt: -1,
        };
        decoded.push(d);
        if (posAt >= 0) {
          if (last && compareBytes(r.buf, posAt, last, lastAt, POSITION_BYTES) <= 0)
            // Sent again by a restarted capture: applied already, only the offset moves.
            return;
          last = r.buf;
          lastAt = posAt;
          d.posAt = posAt;
        }
        if (r.valueStart < 0) return;
        try {
          // Without a promise per record once the writer schema is known (nearly always).
          const change = this.decoder.decodeLoadedAt(r.buf, r.valueStart, r.valueEnd);
          if (change) d.change = change;
          else later.push(d);
        } catch (err) {
          this.undecodable(d, where, err);
        }
      });
    }
    for (const d of later)
      try {
        d.change = await this.decoder.decode(d.buf.subarray(d.valueStart, d.valueEnd));
      } catch (err) {
        this.undecodable(d, where, err);
      }
    return { target, topic: data.topic, partition: data.partition, decoded };
  }

  /** A value that does not decode: a failure in its place (dead-letter), or the applier stops (strict). */
  private undecodable(d: Decoded, where: string, err: unknown): void {
    if (!(err instanceof DataError)) throw err;
    const failure = undecodableRecord(where, d.offset, err, this.opts.onError);
    if (this.opts.onError !== 'dead-letter') throw failure;
    // Parked in its place, after the records before it (applyRun).
    d.failure = failure;
  }

  /** Applies `parts` on `lane` once each partition's previous transaction is done; releases the lane. */
  private dispatch(lane: Lane, parts: Part[]): void {
    const keys = parts.map((p) => `${p.topic}:${p.partition}`);
    const before = Promise.all(keys.map((k) => this.tails.get(k)));
    const task = before
      .then(async () => {
        if (this.error) return;
        const fresh = parts.filter(
          (p) =>
            p.decoded[p.decoded.length - 1].offset + 1n >
            (this.applied.get(`${p.topic}:${p.partition}`) ?? 0n),
        );
        if (!fresh.length) return;
        try {
          await this.applyGathered(lane, fresh);
        } catch (err) {
          if (this.opts.onError !== 'dead-letter' || !(err instanceof DataError)) throw err;
          // A poison record: each partition's batch on its own, the record found and parked.
          for (const p of fresh) for (const run of runs(p.decoded)) await this.applyRun(lane, p, run);
        }
        for (const p of fresh) this.committed(p.topic, p.partition, p.decoded);
      })
      .catch((err) => this.latch.fail(err))
      .finally(() => this.pool.give(lane));
    for (const k of keys) this.tails.set(k, task);
  }

  private committed(topic: string, partition: number, decoded: Decoded[]): void {
    const key = `${topic}:${partition}`;
    const next = decoded[decoded.length - 1].offset + 1n;
    this.applied.set(key, next);
    const pos = lastPosition(decoded);
    if (pos) this.streamPos.set(key, pos);
    this.consumer?.committed(key, next);
  }

  private async drain(): Promise<void> {
    await Promise.all(this.tails.values());
  }

  /** The parts in one destination transaction, with their offsets (fenced). */
  private async applyGathered(lane: Lane, parts: Part[]): Promise<void> {
    const byTopic = new Map<string, Part[]>();
    for (const p of parts) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p]);
    let changes = 0;
    let bytes = 0;
    for (const p of parts)
      for (const d of p.decoded) {
        // A record that does not decode: dispatch applies the runs one by one and parks it.
        if (d.failure) throw d.failure;
        if (d.change) changes++;
        bytes += valueBytes(d);
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
        const shapes = all.map((run) => shapeOf(run)).filter((s) => s !== null);
        const truncates = all.some((run) => run.some((d) => d.change?.op === 't'));
        const moves = all.some((run) => run.some((d) => d.change !== null && movesKey(target.key, d.change)));
        // One statement set per table when that keeps each key's order: a key's changes are in
        // one partition. A truncate, a schema change or a key change (its two halves are on two
        // partitions) splits it back into the partitions' runs, applied one after the other (the
        // truncate guard then orders them).
        const together =
          !truncates && !moves && shapes.every((s) => sameShape(s, shapes[0])) ? [all.flat()] : all;
        for (const run of together) {
          const list = run.map((d) => d.change).filter((c): c is DecodedChange => c !== null);
          if (!list.length) continue;
          const counts = await lane.changes.applyInTransaction(
            targetTable(target, list),
            list,
            this.opts.group,
          );
          this.opts.onApplied?.(target, counts);
        }
      }
      await storeOffsets(
        client,
        this.opts.group,
        parts.map((p) => this.mark(p.topic, p.partition, p.decoded)),
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

  private mark(topic: string, partition: number, run: Decoded[]): OffsetMark {
    return {
      group: this.opts.group,
      topic,
      partition,
      nextOffset: run[run.length - 1].offset + 1n,
      streamPos: lastPosition(run),
      expected: this.applied.get(`${topic}:${partition}`) ?? 0n,
    };
  }

  /** One run in its own transaction; with dead-letter, its poison record found and parked. */
  private async applyRun(lane: Lane, part: Part, run: Decoded[]): Promise<void> {
    const mark = this.mark(part.topic, part.partition, run);
    const changes = run.map((d) => d.change).filter((c): c is DecodedChange => c !== null);
    await this.throttle.take(
      changes.length,
      run.reduce((n, d) => n + valueBytes(d), 0),
    );
    try {
      const undecodable = run.find((d) => d.failure);
      if (undecodable) throw undecodable.failure;
      if (changes.length === 0) await storeOffsets(lane.client, mark.group, [mark]);
      else {
        // Not inside onApplied?.(...): an optional call does not evaluate its arguments.
        const counts = await lane.changes.apply(targetTable(part.target, changes), changes, mark);
        this.opts.onApplied?.(part.target, counts);
      }
      this.committed(part.topic, part.partition, run);
    } catch (err) {
      if (this.opts.onError !== 'dead-letter' || !(err instanceof DataError)) throw err;
      if (run.length > 1) {
        // Find the poison record: apply the run one record at a time.
        for (const one of run) await this.applyRun(lane, part, [one]);
        return;
      }
      const d = run[0];
      await this.deadLetters!.park(recordViews(d), err.message, {
        topic: part.topic,
        partition: part.partition,
        table: quoteQualified(part.target.schema, part.target.table),
      });
      await storeOffsets(lane.client, mark.group, [mark]);
      this.committed(part.topic, part.partition, run);
      this.opts.onDeadLetter?.(part.target, d.offset.toString(), err.message);
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    await this.drain();
    await this.deadLetters?.close();
    await Promise.all(this.lanes.map((l) => l.client.end().catch(() => undefined)));
  }
}

/** The stream position of the last positioned change of a run, or null when it has none. */
function lastPosition(run: Decoded[]): Buffer | null {
  for (let i = run.length - 1; i >= 0; i--) {
    const d = run[i];
    if (d.posAt >= 0) return d.buf.subarray(d.posAt, d.posAt + POSITION_BYTES);
  }
  return null;
}

function valueBytes(d: Decoded): number {
  return d.valueStart < 0 ? 0 : d.valueEnd - d.valueStart;
}

/**
 * The columns of a run's rows ("\u0000"-joined), or null when it has no row image. A writer
 * schema's changes share one columns array: arrays are compared before their names are.
 */
function shapeOf(run: Decoded[]): string[] | null {
  const d = run.find((x) => x.change && (x.change.after ?? x.change.before));
  return d ? d.change!.columns : null;
}

/** Whether two runs' columns are the same (null: no row image yet, a shape of its own). */
export function sameShape(a: readonly string[] | null, b: readonly string[] | null): boolean {
  if (a === b) return true;
  return a !== null && b !== null && a.length === b.length && a.every((name, i) => name === b[i]);
}

/**
 * Splits a partition's records into runs applied as one transaction each: a new run starts where
 * the records' columns change (a schema change on the source); tombstones and truncates join the
 * run they are in.
 */
function runs(decoded: Decoded[]): Decoded[][] {
  const out: Decoded[][] = [];
  let shape: string[] | null = null;
  for (const d of decoded) {
    const image = d.change && (d.change.after ?? d.change.before) ? d.change.columns : null;
    if (out.length === 0 || (image !== null && shape !== null && !sameShape(image, shape))) out.push([]);
    out[out.length - 1].push(d);
    if (image !== null) shape = image;
  }
  return out;
}
