/**
 * When to restart a child process that exited unexpectedly. Restarts back off exponentially
 * (initialDelayMs, doubling, capped at maxDelayMs) and stop once the next start would fall
 * outside the window measured from the first crash of the current streak: `connectionWindowMs`
 * when the child said it lost a server (options.retry.connectionMinutes), `windowMs` for any
 * other exit (options.retry.otherMinutes; a crash with no word, SIGKILL, the OOM killer). A child that stayed
 * up for `stableMs` before crashing starts a new streak: a process that runs for an hour and
 * then dies once is not charged for the crashes of the morning.
 */
export interface RestartPolicy {
  windowMs: number;
  /** The window when the latest exit was a connection loss; defaults to windowMs. */
  connectionWindowMs?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  stableMs?: number;
}

export class RestartTracker {
  private streakStart: number | null = null;
  private crashes = 0;

  constructor(
    private readonly policy: RestartPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** Crashes in the current streak. */
  get attempts(): number {
    return this.crashes;
  }

  /**
   * Records a crash of a child that had been up for `uptimeMs` (`connectionLoss`: it said it
   * lost a server); returns the delay before the next start, or null when the window of the
   * crash's kind is spent and the child must not be started again.
   */
  onCrash(uptimeMs: number, connectionLoss = false): number | null {
    const t = this.now();
    if (uptimeMs >= (this.policy.stableMs ?? 60_000)) {
      this.streakStart = null;
      this.crashes = 0;
    }
    if (this.streakStart === null) this.streakStart = t;
    this.crashes++;
    const delay = Math.min(
      this.policy.maxDelayMs ?? 15_000,
      (this.policy.initialDelayMs ?? 500) * 2 ** (this.crashes - 1),
    );
    const windowMs = connectionLoss
      ? (this.policy.connectionWindowMs ?? this.policy.windowMs)
      : this.policy.windowMs;
    return t + delay - this.streakStart > windowMs ? null : delay;
  }
}
