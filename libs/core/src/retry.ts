import { isProgrammingError, isRetriable } from './errors';

export interface RetryOptions {
  /** Give up when this many milliseconds have passed since the first attempt. */
  deadlineMs: number;
  /** First delay; doubles (times `factor`) after each failure up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
  /** Fraction of the delay added or removed at random, so many workers do not retry in step. */
  jitter?: number;
  /** Decide whether an error is worth another attempt; defaults to `isRetriable`. */
  shouldRetry?: (err: unknown) => boolean;
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

/**
 * Runs `fn` until it succeeds, the error is not retriable, or the deadline passes.
 * Programming errors are rethrown at once whatever `shouldRetry` says.
 * When the deadline passes, a RetryDeadlineError with the last error as cause is thrown.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const shouldRetry = options.shouldRetry ?? isRetriable;
  const factor = options.factor ?? 2;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const jitter = options.jitter ?? 0.2;
  let delay = options.initialDelayMs ?? 200;
  const start = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (isProgrammingError(err) || !shouldRetry(err) || options.signal?.aborted) throw err;
      const elapsed = now() - start;
      const remaining = options.deadlineMs - elapsed;
      if (remaining <= 0) throw new RetryDeadlineError(attempt, elapsed, err);
      const jittered = delay * (1 + jitter * (Math.random() * 2 - 1));
      const pause = Math.max(0, Math.min(jittered, remaining));
      options.onRetry?.(err, attempt, pause);
      await wait(pause, options.signal);
      if (options.signal?.aborted) throw err;
      delay = Math.min(delay * factor, maxDelay);
    }
  }
}
