import { isConnectionLoss, isProgrammingError, isRetriable } from './errors';

/**
 * Every retry in pgferry goes through this file: `retry` for an operation that can be called
 * again, `RetryStreak` for a loop whose attempts are calls of its own (a fetcher's rounds). One
 * policy for all: exponential backoff with jitter, a deadline over a run of failures in a row,
 * programming errors never retried.
 */
export interface RetryOptions {
  /**
   * Give up when this many milliseconds have passed since the first failing attempt of a run of
   * failures began. Infinity retries as long as `shouldRetry` says (a service that runs until
   * `signal` aborts).
   */
  deadlineMs: number;
  /**
   * The deadline for a run whose latest failure is `err`, in place of `deadlineMs`: a run of
   * connection losses may last longer than one of other failures (retryWindows).
   */
  deadlineFor?: (err: unknown) => number;
  /** Give up after this many attempts of one run, as at the deadline; default unlimited. */
  maxAttempts?: number;
  /** First delay; doubles (times `factor`) after each failure up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  /** Fraction of the delay added or removed at random, so many workers do not retry in step. */
  jitter?: number;
  /**
   * An attempt that ran at least this long before it failed counts as a success: the run of
   * failures, its deadline and its delay start over with it. For attempts that are long runs
   * (a stream that fails after hours must not inherit the deadline of a failure long past).
   */
  resetAfterMs?: number;
  /** Decide whether an error is worth another attempt; defaults to `isRetriable`. */
  shouldRetry?: (err: unknown) => boolean;
  /**
   * Called once per failed attempt that will be retried: its number in the current run of
   * failures, and the pause before the next one.
   */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Aborts the waiting between attempts; the last error is thrown. */
  signal?: AbortSignal;
  /** Injected for tests. */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export class RetryDeadlineError extends Error {
  constructor(
    readonly attempts: number,
    readonly elapsedMs: number,
    cause: unknown,
  ) {
    super(
      `gave up after ${attempts} attempts in ${Math.round(elapsedMs / 1000)}s: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = 'RetryDeadlineError';
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** options.retry of the task spec: how long each kind of retriable failure is ridden out. */
export interface RetryWindows {
  /** Connection losses (isConnectionLoss): a server restarting, a network outage. */
  connectionMinutes: number;
  /** Every other retriable failure: deadlocks, a server out of resources, a crashed process. */
  otherMinutes: number;
}

/**
 * The deadlines of `windows` as retry options: a run of failures whose latest is a connection
 * loss gives up after connectionMinutes, any other after otherMinutes.
 */
export function retryDeadlines(windows: RetryWindows): Pick<RetryOptions, 'deadlineMs' | 'deadlineFor'> {
  const other = windows.otherMinutes * 60_000;
  const connection = windows.connectionMinutes * 60_000;
  return { deadlineMs: other, deadlineFor: (err) => (isConnectionLoss(err) ? connection : other) };
}

/** Which window a failure is retried within, as a user sets it: for messages. */
export function retryWindowName(err: unknown, windows: RetryWindows): string {
  return isConnectionLoss(err)
    ? `retry.connectionMinutes (${windows.connectionMinutes})`
    : `retry.otherMinutes (${windows.otherMinutes})`;
}

/**
 * The state of one run of failures in a row under `options`: `failed` after each failed
 * attempt says how long to pause before the next one, or throws; `succeeded` ends the run.
 * For loops that cannot hand `retry` a function to call again (the attempts are calls of their
 * own, each returning what it could do); `retry` itself is built on it.
 */
export class RetryStreak {
  private readonly now: () => number;
  private start: number | null = null;
  private attempts = 0;
  private delay: number;

  constructor(private readonly options: RetryOptions) {
    this.now = options.now ?? Date.now;
    this.delay = options.initialDelayMs ?? 200;
  }

  /** Failed attempts in the current run (0 after a success). */
  get failures(): number {
    return this.attempts;
  }

  /** A success: the next failure starts a new run, with its own deadline and the first delay. */
  succeeded(): void {
    this.start = null;
    this.attempts = 0;
    this.delay = this.options.initialDelayMs ?? 200;
  }

  /**
   * After an attempt that began at `began` (default: now) failed with `err`: the pause before
   * the next attempt (`onRetry` is told). Throws `err` itself when it is a programming error,
   * `shouldRetry` refuses it or `signal` aborted; a RetryDeadlineError with `err` as cause when
   * the run outlasted the deadline or maxAttempts.
   */
  failed(err: unknown, began?: number): number {
    const o = this.options;
    const now = this.now();
    if (isProgrammingError(err) || !(o.shouldRetry ?? isRetriable)(err) || o.signal?.aborted) throw err;
    if (o.resetAfterMs !== undefined && began !== undefined && now - began >= o.resetAfterMs) {
      // The new run of failures starts with this failure, not with the long attempt before it.
      this.succeeded();
      this.start = now;
    }
    this.start ??= began ?? now;
    this.attempts++;
    const elapsed = now - this.start;
    const remaining = (o.deadlineFor?.(err) ?? o.deadlineMs) - elapsed;
    if (remaining <= 0 || this.attempts >= (o.maxAttempts ?? Infinity))
      throw new RetryDeadlineError(this.attempts, elapsed, err);
    const jitter = o.jitter ?? 0.2;
    const jittered = this.delay * (1 + jitter * (Math.random() * 2 - 1));
    const pause = Math.max(0, Math.min(jittered, remaining));
    this.delay = Math.min(this.delay * (o.factor ?? 2), o.maxDelayMs ?? 30_000);
    o.onRetry?.(err, this.attempts, pause);
    return pause;
  }
}

/**
 * Runs `fn` until it succeeds, the error is not retriable, or the deadline passes.
 * Programming errors are rethrown at once whatever `shouldRetry` says.
 * When the deadline passes (or maxAttempts), a RetryDeadlineError with the last error as cause
 * is thrown; when `signal` aborts, the last error.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const streak = new RetryStreak(options);
  for (let attempt = 1; ; attempt++) {
    const began = now();
    try {
      return await fn(attempt);
    } catch (err) {
      await wait(streak.failed(err, began), options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}

/**
 * `work`, or `onTimeout()` thrown when it has not settled within `ms`: for a call over a
 * connection that may have gone silent (a peer that stopped answering without closing), whose
 * caller then drops the connection. `work` itself is not cancelled; its outcome is ignored.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
