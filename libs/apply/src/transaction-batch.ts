import type { Client } from 'pg';
import { DataError, PgferryError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import type { DecodedChange, RecordDecoder } from '@pgferry/avro';
import { targetTable, type ApplierTarget } from './applier';
import type { DeadLetters } from './dead-letter';
import type { Queued } from './partition-queues';
import type { PgChangeApplier } from './pg-change-applier';
import type { Throttle } from './throttle';
import { recordViews, undecodableRecord } from './undecodable-records';
import { sameShape, type PerKeyApplierOptions } from './per-key-applier';

/**
 * The open destination transaction: whole source transactions, in commit order, committed
 * together (a reader sees the source as of one of its commits), with their offsets.
 */
export interface Batch {
  started: number;
  changes: number;
  /** The first and the last source transaction in it (for errors). */
  firstId: string;
  lastId: string;
  /** The END position of the last source transaction in it (stored with the transaction topic's offset). */
  endPos: Buffer | null;
  /** Changes gathered per table topic, not yet applied. */
  pending: Map<string, Pending>;
  pendingChanges: number;
  pendingBytes: number;
  /**
   * The runs handed to the destination and still being applied there, while the next ones are
   * gathered (one set at a time: see BatchApplier.flushAll); null when none is.
   */
  applying: Promise<void> | null;
}

/** Changes of one table in one shape, in source order, applied together. */
export interface Pending {
  target: ApplierTarget;
  /** The columns of its row images (null before the first one: truncates only). */
  shape: readonly string[] | null;
  changes: DecodedChange[];
  /** Each change's record and partition (for the dead-letter topic). */
  records: Queued[];
  partitions: number[];
  bytes: number;
}

/** Changes gathered before they are applied, inside the open destination transaction (bounded memory). */
export const MAX_PENDING = 5000;
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;

/** A batch opened by the source transaction `firstId`, nothing gathered yet. */
export function openBatch(firstId: string): Batch {
  return {
    started: Date.now(),
    changes: 0,
    endPos: null,
    firstId,
    lastId: firstId,
    pending: new Map(),
    pendingChanges: 0,
    pendingBytes: 0,
    applying: null,
  };
}

/**
 * Decodes the records a batch takes, gathers their changes per table and applies them, each
 * table's run in source order through PgChangeApplier, inside the open destination transaction
 * on `client` (the caller begins and commits it). strict: a record that does not decode or a
 * change that cannot be applied fails the run, naming the source transactions held back.
 * dead-letter: such a record goes to the dead-letter topic before the transaction commits (a
 * failing run is applied again one change at a time inside savepoints to find it).
 */
export class BatchApplier {
  constructor(
    private readonly client: Client,
    private readonly decoder: RecordDecoder,
    private readonly changes: PgChangeApplier,
    private readonly throttle: Throttle,
    private readonly deadLetters: DeadLetters | null,
    private readonly opts: Pick<PerKeyApplierOptions, 'group' | 'onError' | 'onApplied' | 'onDeadLetter'>,
    /** Called when runs handed over fail, so a caller waiting for records looks again at once. */
    private readonly onRunsFailed: () => void = () => undefined,
  ) {}

  /**
   * Decodes a record's change (not a tombstone) and adds it to the batch. Returns a promise only
   * where it must wait: a writer schema not fetched yet, a record parked, gathered changes
   * applied (see add); so no promise per record.
   */
  take(batch: Batch, target: ApplierTarget, partition: number, item: Queued): Promise<void> | undefined {
    let change: DecodedChange | undefined;
    try {
      change = this.decoder.decodeLoadedAt(item.buf, item.valueStart, item.valueEnd);
    } catch (err) {
      return this.undecodable(target, partition, item, err);
    }
    if (change) return this.add(batch, target, partition, item, change);
    return this.decoder.decode(item.buf.subarray(item.valueStart, item.valueEnd)).then(
      (later) => this.add(batch, target, partition, item, later),
      (err) => this.undecodable(target, partition, item, err),
    );
  }

  /** A value that does not decode: parked (onError dead-letter), or the applier stops (strict). */
  private async undecodable(target: ApplierTarget, partition: number, item: Queued, err: unknown) {
    if (!(err instanceof DataError)) throw err;
    const where = `Kafka topic ${target.topic} partition ${partition}`;
    const failure = undecodableRecord(where, BigInt(item.offset), err, this.opts.onError);
    if (this.opts.onError !== 'dead-letter') throw failure;
    // Parked before the destination transaction commits, like a change that does not apply.
    await this.deadLetters!.park(recordViews(item), failure.message, {
      topic: target.topic,
      partition,
      table: quoteQualified(target.schema, target.table),
    });
    this.opts.onDeadLetter?.(target, String(item.offset), failure.message);
  }

  /**
   * Adds a change to its table's run in the batch. Returns a promise only where it applies what
   * is gathered (the table's run of an older shape first, or everything past the bounds): no
   * promise per change.
   */
  add(
    batch: Batch,
    target: ApplierTarget,
    partition: number,
    item: Queued,
    change: DecodedChange,
  ): Promise<void> | undefined {
    const pending = batch.pending.get(target.topic);
    const shape = change.after || change.before ? change.columns : (pending?.shape ?? null);
    if (pending && !sameShape(pending.shape, shape) && pending.changes.length)
      // The table's columns changed (a schema change on the source): the older shape is handed
      // to the destination first (runs are applied in the order they are handed over).
      return this.flushAll(batch).then(() =>
        this.push(batch, this.open(batch, target, shape), partition, item, change),
      );
    return this.push(batch, pending ?? this.open(batch, target, shape), partition, item, change);
  }

  /** A new run of the table's changes in the batch (in the place of its previous one). */
  private open(batch: Batch, target: ApplierTarget, shape: readonly string[] | null): Pending {
    const pending = { target, shape, changes: [], records: [], partitions: [], bytes: 0 };
    batch.pending.set(target.topic, pending);
    return pending;
  }

  private push(
    batch: Batch,
    pending: Pending,
    partition: number,
    item: Queued,
    change: DecodedChange,
  ): Promise<void> | undefined {
    const bytes = item.valueEnd - item.valueStart;
    pending.changes.push(change);
    pending.records.push(item);
    pending.partitions.push(partition);
    pending.bytes += bytes;
    batch.changes++;
    batch.pendingChanges++;
    batch.pendingBytes += bytes;
    if (batch.pendingChanges >= MAX_PENDING || batch.pendingBytes >= MAX_PENDING_BYTES)
      return this.flushAll(batch);
    return undefined;
  }

  /**
   * Hands every table's gathered changes to the destination, inside the open destination
   * transaction, and returns once the runs handed over before are applied, without waiting for
   * these: the destination's backend applies one set of runs while this process decodes and
   * gathers the next (on one connection the two would otherwise take turns). So at most two
   * sets are in memory. A run that fails is thrown by the next flushAll, finish or settle.
   */
  async flushAll(batch: Batch): Promise<void> {
    const previous = batch.applying;
    if (previous) {
      batch.applying = null;
      await previous;
    }
    const runs = [...batch.pending.values()].filter((p) => p.changes.length);
    batch.pending = new Map();
    batch.pendingChanges = 0;
    batch.pendingBytes = 0;
    if (!runs.length) return;
    const applying = this.flushRuns(runs, batch);
    // Thrown where it is awaited; this wakes a caller waiting for records (and keeps the
    // rejection from counting as unhandled meanwhile).
    applying.catch(() => this.onRunsFailed());
    batch.applying = applying;
  }

  /** Applies everything gathered and handed over: before the destination transaction commits. */
  async finish(batch: Batch): Promise<void> {
    await this.flushAll(batch);
    await this.settle(batch);
  }

  /** Waits for the runs handed over to be applied (rethrowing their failure). */
  async settle(batch: Batch): Promise<void> {
    const applying = batch.applying;
    batch.applying = null;
    if (applying) await applying;
  }

  private async flushRuns(runs: readonly Pending[], batch: Batch): Promise<void> {
    for (const run of runs) await this.flush(run, batch);
  }

  /** Applies a run of one table's changes inside the open destination transaction. */
  async flush(run: Pending, batch: Batch): Promise<void> {
    const { target } = run;
    const t = targetTable(target, run.changes);
    await this.throttle.take(run.changes.length, run.bytes);
    const client = this.client;
    const changes = this.changes;
    if (this.opts.onError !== 'dead-letter') {
      const counts = await changes.applyInTransaction(t, run.changes, this.opts.group).catch((err) => {
        throw describeFailure(err, batch);
      });
      this.opts.onApplied?.(target, counts);
      return;
    }
    await client.query('SAVEPOINT pgferry_run');
    try {
      const counts = await changes.applyInTransaction(t, run.changes, this.opts.group);
      await client.query('RELEASE SAVEPOINT pgferry_run');
      this.opts.onApplied?.(target, counts);
      return;
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      await client.query('ROLLBACK TO SAVEPOINT pgferry_run');
      changes.forgetStages(true);
    }
    // Find the poison changes: one at a time, each in its own savepoint.
    for (let i = 0; i < run.changes.length; i++) {
      const one = run.changes[i];
      const oneTable = { ...t, columns: one.after || one.before ? one.columns : t.columns };
      await client.query('SAVEPOINT pgferry_one');
      try {
        const counts = await changes.applyInTransaction(oneTable, [one], this.opts.group);
        await client.query('RELEASE SAVEPOINT pgferry_one');
        this.opts.onApplied?.(target, counts);
      } catch (err) {
        if (!(err instanceof DataError)) throw err;
        await client.query('ROLLBACK TO SAVEPOINT pgferry_one');
        changes.forgetStages(true);
        const partition = run.partitions[i];
        const message = recordViews(run.records[i]);
        await this.deadLetters!.park(message, err.message, {
          topic: target.topic,
          partition,
          table: quoteQualified(target.schema, target.table),
        });
        this.opts.onDeadLetter?.(target, message.offset.toString(), err.message);
      }
    }
  }
}

/** A change that cannot be applied stops the applier, naming the source transactions it held back. */
function describeFailure(err: unknown, batch: Batch): Error {
  if (!(err instanceof DataError)) return err instanceof Error ? err : new PgferryError(String(err));
  const which =
    batch.firstId === batch.lastId
      ? `source transaction ${batch.lastId}`
      : `source transactions ${batch.firstId} to ${batch.lastId}, committed together,`;
  return new DataError(`${err.message} (nothing of ${which} is on the destination)`, { cause: err });
}
