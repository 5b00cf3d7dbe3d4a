import { RateLimiter, realClock, type Clock, type IncrementalThrottle } from '@pgferry/core';

/**
 * The change appliers' rate limit (task spec `options.throttle.incremental`): changes per second
 * and record bytes per second applied on the destination, waited for before each destination
 * transaction. While it waits the applier fetches no further than one round ahead, so a
 * throttled task's lag grows in Kafka, not in memory. The limits may change while it runs
 * (`setLimits`, from pgferry.throttle); the bucket holds at most a quarter of a second of
 * budget, so a pause never turns into a burst above the limit. A transaction larger than that
 * waits for a full bucket and leaves it in debt: huge batches are slowed, never refused. Wraps
 * the apply stage; it does not live inside it.
 */
export type ThrottleLimits = IncrementalThrottle;
export type { Clock };
export { realClock };

const BURST_SECONDS = 0.25;

export class Throttle {
  private readonly limiter: RateLimiter<'rows' | 'bytes'>;

  constructor(limits: ThrottleLimits, clock: Clock = realClock) {
    this.limiter = new RateLimiter(
      { rows: limits.rowsPerSecond, bytes: limits.bytesPerSecond },
      { burstSeconds: BURST_SECONDS, clock },
    );
  }

  get limited(): boolean {
    return this.limiter.limited;
  }

  /** Total time spent waiting, summed over lanes, for the task status. */
  get waitedMs(): number {
    return this.limiter.waitedMs;
  }

  /** Changes and bytes that went through since the start. */
  get totals(): { rows: number; bytes: number } {
    return { rows: this.limiter.taken.get('rows') ?? 0, bytes: this.limiter.taken.get('bytes') ?? 0 };
  }

  /** New limits from now on; a transaction waiting for the old ones re-checks at once. */
  setLimits(limits: ThrottleLimits): void {
    this.limiter.setLimits({ rows: limits.rowsPerSecond, bytes: limits.bytesPerSecond });
  }

  /** Resolves when `rows` changes of `bytes` bytes may be applied, and spends them. */
  take(rows: number, bytes: number): Promise<void> {
    return this.limiter.take({ rows, bytes });
  }
}
