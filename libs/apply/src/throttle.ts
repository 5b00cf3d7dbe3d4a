/**
 * The applier's rate limit (task spec `options.throttle`): rows per second and bytes per second
 * on the destination, each a token bucket holding at most one second of budget, so a pause never
 * turns into a burst above the limit. `take` waits until the batch fits; a batch larger than one
 * second of budget is let through once the bucket is full and leaves it in debt, so huge batches
 * are slowed, never refused. Wraps the apply stage; it does not live inside it.
 */
export interface ThrottleLimits {
  rowsPerSecond?: number;
  bytesPerSecond?: number;
}

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
    private readonly rate: number,
    now: number,
  ) {
    this.tokens = rate;
    this.last = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** Milliseconds to wait before `amount` may go (0: now). */
  wait(amount: number, now: number): number {
    this.refill(now);
    const need = Math.min(amount, this.rate);
    return this.tokens >= need ? 0 : Math.ceil(((need - this.tokens) / this.rate) * 1000);
  }

  spend(amount: number): void {
    this.tokens -= amount;
  }
}

export class Throttle {
  private readonly rows?: Bucket;
  private readonly bytes?: Bucket;
  /** Total time spent waiting, for the task status. */
  waitedMs = 0;

  constructor(
    limits: ThrottleLimits,
    private readonly clock: Clock = realClock,
  ) {
    const now = clock.now();
    if (limits.rowsPerSecond) this.rows = new Bucket(limits.rowsPerSecond, now);
    if (limits.bytesPerSecond) this.bytes = new Bucket(limits.bytesPerSecond, now);
  }

  get limited(): boolean {
    return Boolean(this.rows || this.bytes);
  }

  /** Resolves when `rows` rows of `bytes` bytes may be applied, and spends them. */
  async take(rows: number, bytes: number): Promise<void> {
    if (!this.limited) return;
    for (;;) {
      const now = this.clock.now();
      const wait = Math.max(this.rows?.wait(rows, now) ?? 0, this.bytes?.wait(bytes, now) ?? 0);
      if (wait === 0) break;
      this.waitedMs += wait;
      await this.clock.sleep(wait);
    }
    this.rows?.spend(rows);
    this.bytes?.spend(bytes);
  }
}
