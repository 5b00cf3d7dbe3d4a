import { PgferryError, type NameCase } from '@pgferry/core';
import type { KafkaClientConfig } from '@pgferry/kafka';
import type { TransformPlan } from '@pgferry/pg';
import type { DecodedChange } from '@pgferry/avro';
import type { TargetTable } from './pg-row-applier';

/**
 * The contract every applier keeps (snapshot, per-key, transactional):
 *   - `start` connects, reads the offsets the destination holds and begins consuming; it
 *     resolves once consuming has begun, not when anything is applied;
 *   - each record takes effect exactly once: a batch's rows and its next offset are committed in
 *     one destination transaction, and records below the stored offset are skipped, whatever
 *     Kafka hands out after a restart or a rebalance;
 *   - a failure stops consuming and is kept in `error` (the caller stops the applier and, for a
 *     retriable one, starts a new one, which resumes from the destination's offsets);
 *   - `positions` are the next offsets the destination holds, per "topic:partition", for the
 *     partitions this applier applied;
 *   - `stop` lets the transactions under way commit or fail, leaves the group, closes what it
 *     opened. Idempotent.
 */
export interface Applier {
  readonly error: Error | null;
  readonly positions: ReadonlyMap<string, bigint>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Runs a started applier until `stop` aborts (resolves) or the applier fails (rejects with its
 * error); the caller stops it either way.
 */
export function applyUntilStopped(applier: Applier, stop: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (applier.error) {
        clearInterval(poll);
        stop.removeEventListener('abort', done);
        reject(applier.error);
      }
    }, 100);
    function done() {
      clearInterval(poll);
      resolve();
    }
    if (stop.aborted) done();
    else stop.addEventListener('abort', done, { once: true });
  });
}

/** Where one topic's rows go. */
export interface ApplierTarget {
  topic: string;
  schema: string;
  table: string;
  /** The source's key columns. */
  key: string[];
  /** The destination's view of the source table (transforms:), applied to every row written. */
  transform?: TransformPlan;
  /** objects.nameCase: the case of the destination's column names (see TargetTable.nameCase). */
  nameCase?: NameCase;
}

/** The table a run of `changes` of `target` is written to: the records' columns (the first row image's), the target's key and view. */
export function targetTable(target: ApplierTarget, changes: readonly DecodedChange[]): TargetTable {
  return {
    schema: target.schema,
    table: target.table,
    columns: changes.find((c) => c.after ?? c.before)?.columns ?? [],
    key: target.key,
    transform: target.transform,
    nameCase: target.nameCase,
  };
}

/** What every applier is given to reach Kafka and the consumer group it applies for. */
export interface ApplierKafka {
  kafka: KafkaClientConfig;
  /** The consumer group: names the offsets in pgferry.offsets (and Kafka's, for monitoring). */
  group: string;
  /**
   * The task whose run's records these are (see RunRecords): checked at start against this
   * Kafka; a record of another run, or a partition without a stored offset, stops the applier.
   * The task's processes always give it.
   */
  task?: string;
}

/**
 * How the change appliers fetch: up to 2 MB per partition and 8 MB per request (of records as
 * read, decompressed), waiting at most 200 ms for data, so batches are large under load and an
 * idle topic answers quickly. A round is held until its records are applied, and one more is
 * fetched ahead: 16 MB rounds kept the per-key applier near 400 MB resident through a 2M-row
 * UPDATE.
 */
export const APPLIER_FETCH = {
  maxWaitMs: 200,
  maxBytesPerPartition: 2 * 1024 * 1024,
  maxBytes: 8 * 1024 * 1024,
} as const;

/** The failure latch of an applier: the first error is kept, later ones are dropped. */
export class FailureLatch {
  private failure: Error | null = null;

  get error(): Error | null {
    return this.failure;
  }

  fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new PgferryError(String(err));
  }
}

/** "topic:partition" -> [topic, partition]. */
export function splitKey(key: string): { topic: string; partition: number } {
  const at = key.lastIndexOf(':');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}
