export interface WaitForOptions<T> {
  /** Fail after this many milliseconds. */
  timeout?: number;
  /** Poll every this many milliseconds. */
  interval?: number;
  /** What is being waited for; it leads the timeout message. */
  reason: string;
  /** A value counts as done when this returns true; defaults to truthiness. */
  until?: (value: T) => boolean;
}

export class WaitForTimeoutError extends Error {
  constructor(
    message: string,
    readonly lastValue: unknown,
    readonly lastError: unknown,
  ) {
    super(message, lastError === undefined ? undefined : { cause: lastError });
    this.name = 'WaitForTimeoutError';
  }
}

function show(value: unknown): string {
  try {
    const text =
      typeof value === 'string'
        ? JSON.stringify(value)
        : JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
    if (text === undefined) return String(value);
    return text.length > 500 ? `${text.slice(0, 500)}...` : text;
  } catch {
    return String(value);
  }
}

/**
 * Polls `condition` until it yields a done value (see `until`) and returns that value. A throwing
 * condition counts as not done. On timeout it fails with the reason, the last value seen and the
 * last error thrown, so a failing test says what it was waiting for and what it saw instead.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitForOptions<T>): Promise<T> {
  const timeout = options.timeout ?? 10_000;
  const interval = options.interval ?? 50;
  const until = options.until ?? ((v: T) => Boolean(v));
  const deadline = Date.now() + timeout;
  let last: T | undefined;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      last = await condition();
      lastError = undefined;
      if (until(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen =
        lastError !== undefined
          ? `last error: ${(lastError as Error).message ?? String(lastError)}`
          : `last value: ${show(last)}`;
      throw new WaitForTimeoutError(
        `timed out after ${timeout} ms (${attempts} checks) waiting for ${options.reason}; ${seen}`,
        last,
        lastError,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
}

/** What startUntilFailure drives: an applier or any process-like object that reports its first error. */
export interface FailingSubject {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly error: Error | null;
}

/**
 * Starts `subject`, waits (with `reason`) until it reports an error, and stops it whether or not
 * one came; returns the error. For specs of what stops a strict applier.
 */
export async function startUntilFailure(
  subject: FailingSubject,
  reason: string,
  timeout = 30_000,
): Promise<Error> {
  await subject.start();
  const error = await waitFor(() => subject.error, {
    reason,
    until: (e) => e !== null,
    timeout,
  }).finally(() => subject.stop());
  return error!;
}
