/**
 * A rate limit over several measures at once (rows, bytes, queries, ...), each a token bucket
 * whose rate can change while takers wait. Contract, per measure with rate r: over any interval
 * of t seconds at most r * t + max(r * burstSeconds, largest single amount) goes through, so a
 * caller that takes in amounts of at most r * burstSeconds holds the rate to within
 * r * burstSeconds over any window. An amount larger than the bucket waits for a full bucket and
 * leaves it in debt: huge amounts are slowed, never refused. A limit changed by `setLimits`
 * holds from that moment: waiting takers wake and wait again under the new rates.
 */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

class Bucket {
  private tokens: number;
  private last: number;

  constructor(
    public rate: number,
    private readonly burstSeconds: number,
    now: number,
  ) {
    this.tokens = this.capacity;
    this.last = now;
  }

  get capacity(): number {
    return this.rate * this.burstSeconds;
  }

  refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** Changes the rate from `now` on (what accrued before was at the old rate). */
  setRate(rate: number, now: number): void {
    this.refill(now);
    this.rate = rate;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  /** Milliseconds to wait before `amount` may go (0: now). */
  wait(amount: number, now: number): number {
    this.refill(now);
    const need = Math.min(amount, this.capacity);
    return this.tokens >= need ? 0 : Math.max(1, Math.ceil(((need - this.tokens) / this.rate) * 1000));
  }

  spend(amount: number): void {
    this.tokens -= amount;
  }
}

export type Limits<K extends string> = Partial<Record<K, number | undefined>>;

export class RateLimiter<K extends string> {
  private readonly buckets = new Map<K, Bucket>();
  /** Takers asleep; setLimits wakes them all. */
  private readonly sleepers = new Set<() => void>();
  /** Milliseconds takers spent waiting, summed over takers (for "is it throttled now"). */
  waitedMs = 0;
  /** Amounts that went through, per measure, since the start. */
  readonly taken = new Map<K, number>();

  constructor(
    limits: Limits<K> = {},
    private readonly opts: { burstSeconds?: number; clock?: Clock } = {},
  ) {
    this.setLimits(limits);
  }

  private get clock(): Clock {
    return this.opts.clock ?? realClock;
  }

  get limited(): boolean {
    return this.buckets.size > 0;
  }

  /** The rate in force for `measure`, or undefined when it has no limit. */
  rate(measure: K): number | undefined {
    return this.buckets.get(measure)?.rate;
  }

  /** Replaces the limits (an absent or 0 measure: no limit), from now on; waiting takers re-check. */
  setLimits(limits: Limits<K>): void {
    const now = this.clock.now();
    const burst = this.opts.burstSeconds ?? 1;
    for (const [measure, bucket] of [...this.buckets]) {
      const r = limits[measure];
      if (!r) this.buckets.delete(measure);
      else if (r !== bucket.rate) bucket.setRate(r, now);
    }
    for (const [measure, r] of Object.entries(limits) as Array<[K, number | undefined]>)
      if (r && !this.buckets.has(measure)) this.buckets.set(measure, new Bucket(r, burst, now));
    for (const wake of [...this.sleepers]) wake();
  }

  /** Resolves when `amounts` may go through, and spends them. */
  async take(amounts: Partial<Record<K, number>>): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      let wait = 0;
      for (const [measure, bucket] of this.buckets)
        wait = Math.max(wait, bucket.wait(amounts[measure] ?? 0, now));
      if (wait === 0) break;
      await this.sleep(wait);
      this.waitedMs += this.clock.now() - now;
    }
    for (const [measure, amount] of Object.entries(amounts) as Array<[K, number]>) {
      this.buckets.get(measure)?.spend(amount);
      this.taken.set(measure, (this.taken.get(measure) ?? 0) + amount);
    }
  }

  /** Sleeps `ms`, or less when the limits change meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.sleepers.delete(wake);
        resolve();
      };
      this.sleepers.add(wake);
      void this.clock.sleep(ms).then(wake);
    });
  }
}
