import {
  describeError,
  isConnectionLoss,
  isProgrammingError,
  PgferryError,
  redactString,
} from '@pgferry/core';

/**
 * The messages between a supervisor and its child over the Node IPC channel. `event` carries
 * progress (JSON values only); `done` says the child finished its work and is about to exit 0;
 * `failed` says why it is about to exit non-zero, whether starting it again can help, and
 * whether it lost a server (`connectionLoss`: restarted within retry.connectionMinutes, not
 * otherMinutes).
 */
export type ChildMessage<E> =
  | { type: 'event'; event: E }
  | { type: 'done' }
  | { type: 'failed'; message: string; retriable: boolean; connectionLoss?: boolean };

/** `start`: a child forked ahead (AWAIT_START_ENV) may begin its work; `stop`: it should end. */
export type ParentMessage = { type: 'start' } | { type: 'stop' };

/**
 * Set to 1 in the environment of a child forked ahead of its work (see PrestartedChildren): it
 * loads its modules, then waits for `start` before it reads its configuration.
 */
export const AWAIT_START_ENV = 'PGFERRY_AWAIT_START';

/** Exit codes of a child: 0 done or stopped on request, 1 retriable failure, 2 fatal failure. */
export const EXIT_RETRIABLE = 1;
export const EXIT_FATAL = 2;

/** Fatal: a PgferryError that says retrying cannot help, or a bug. Anything else may pass. */
export function isFatal(err: unknown): boolean {
  return (err instanceof PgferryError && !err.retriable) || isProgrammingError(err);
}

export interface ChildContext<E> {
  /** Sends a progress event to the supervisor (or prints it as a JSON line when run alone). */
  emit(event: E): void;
  /** Aborted when the supervisor asks the child to stop, or on SIGTERM / SIGINT. */
  stop: AbortSignal;
}

/**
 * Runs the body of a child process: reports its outcome to the supervisor and exits with the
 * code above. The child exits at once when the IPC channel closes, so it never outlives its
 * controller, even one killed with SIGKILL. Without an IPC channel (started by hand or by a
 * container runtime) events go to stdout as JSON lines and only the signals stop it.
 */
export function runChildProcess<E>(name: string, body: (ctx: ChildContext<E>) => Promise<void>): void {
  const stop = new AbortController();
  const supervised = typeof process.send === 'function';
  const send = (msg: ChildMessage<E>): Promise<void> =>
    new Promise((resolve) => {
      if (supervised && process.connected) process.send!(msg, undefined, {}, () => resolve());
      else {
        if (msg.type === 'event') process.stdout.write(`${JSON.stringify(msg.event)}\n`);
        resolve();
      }
    });
  // Forked ahead: the modules are loaded (the entry imported them before calling this); the
  // work waits for `start`. Stopped before it: nothing was done, exit 0.
  let begin = (): void => undefined;
  const started =
    supervised && process.env[AWAIT_START_ENV] === '1'
      ? new Promise<void>((resolve) => {
          const idle = () => process.exit(0);
          stop.signal.addEventListener('abort', idle, { once: true });
          begin = () => {
            stop.signal.removeEventListener('abort', idle);
            resolve();
          };
        })
      : Promise.resolve();
  if (supervised) {
    process.on('disconnect', () => {
      process.stderr.write(`pgferry ${name}: the controller went away; exiting\n`);
      process.exit(EXIT_RETRIABLE);
    });
    process.on('message', (m: ParentMessage) => {
      if (m?.type === 'stop') stop.abort();
      else if (m?.type === 'start') begin();
    });
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
  started
    .then(() => body({ emit: (event) => void send({ type: 'event', event }), stop: stop.signal }))
    .then(
      async () => {
        await send({ type: 'done' });
        process.exit(0);
      },
      async (err) => {
        const message = redactString(describeError(err));
        const fatal = isFatal(err);
        process.stderr.write(`pgferry ${name}: ${fatal ? 'fatal' : 'failed'}: ${message}\n`);
        if (err instanceof Error && err.stack && !(err instanceof PgferryError))
          process.stderr.write(`${redactString(err.stack)}\n`);
        await send({ type: 'failed', message, retriable: !fatal, connectionLoss: isConnectionLoss(err) });
        process.exit(fatal ? EXIT_FATAL : EXIT_RETRIABLE);
      },
    );
}
