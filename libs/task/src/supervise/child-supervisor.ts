import { fork, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { PgferryError, redactString } from '@pgferry/core';
import { AWAIT_START_ENV, type ChildMessage, type ParentMessage } from './child-protocol';
import { RestartTracker, type RestartPolicy } from './restart-policy';

/** A supervised child process gave up (its restart window is spent) or failed fatally. */
export class ChildProcessError extends PgferryError {
  constructor(
    readonly processName: string,
    message: string,
  ) {
    super(message, { retriable: false, code: 'CHILD_PROCESS_FAILED' });
  }
}

export interface ChildLifecycleEvent {
  process: string;
  status: 'started' | 'restarting' | 'stopped' | 'done';
  pid?: number;
  detail: string;
}

export interface ChildSupervisorOptions<E> {
  /** Names the process in messages and its files: <dir>/<name>.pid, <dir>/<name>.log. */
  name: string;
  /** The compiled module to run with `node` (forked with an IPC channel). */
  entry: string;
  dir: string;
  /** Added to the controller's environment. Secrets must come through a 0600 file, not argv. */
  env?: Record<string, string>;
  restart: RestartPolicy;
  /**
   * job: exiting 0 after reporting `done` completes it (capture). service: runs until stopped;
   * any exit not asked for is a crash (applier).
   */
  kind: 'job' | 'service';
  onEvent?: (event: E) => void;
  onLifecycle?: (e: ChildLifecycleEvent) => void;
  /** How long a child may take to stop when asked before it is killed (default 15 s). */
  stopTimeoutMs?: number;
  /** Lines of the child's output quoted when it crashes (default 12). */
  tailLines?: number;
  /** Children forked ahead: the first start takes this one's over when it waits there alive. */
  prestarted?: PrestartedChildren;
}

/** The child process a fork started, and where its output began in its log file. */
interface Forked {
  child: ChildProcess;
  logOffset: number;
}

/**
 * Forks `entry` with its output appended to <dir>/<name>.log (a header line first, with the
 * pid) and an IPC channel. Node options for the children only, e.g. PGFERRY_CHILD_NODE_ARGS=
 * '--cpu-prof --cpu-prof-dir=/tmp/prof' to profile them (the controller's own are not passed on).
 */
function forkLogged(
  name: string,
  entry: string,
  logFile: string,
  env: Record<string, string>,
  note = '',
): Forked {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const logOffset = fstatSync(fd).size;
    const child = fork(entry, [], {
      stdio: ['ignore', fd, fd, 'ipc'],
      env: { ...process.env, ...env },
      execArgv: (process.env.PGFERRY_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean),
      serialization: 'json',
    });
    writeSync(fd, `--- pgferry ${name} pid ${child.pid} started${note} ${new Date().toISOString()}\n`);
    return { child, logOffset };
  } finally {
    closeSync(fd);
  }
}

/**
 * Children forked ahead of their work, while the controller still runs the schema phase: each
 * loads its modules (0.5-0.7 s of CPU for the capture and the applier), then waits for `start`
 * (see runChildProcess), so the data starts flowing that much sooner. A ChildSupervisor given
 * this set takes its child over on its first start, when one of its name waits alive with the
 * same entry and environment; otherwise it forks as usual. `dispose` ends those never taken
 * (the phase was already done, or the task failed before it); they also exit when the
 * controller does, like every child.
 */
export class PrestartedChildren {
  private readonly waiting = new Map<string, Forked & { entry: string; env: string }>();
  private readonly killOnExit = () => this.dispose();

  constructor(private readonly dir: string) {}

  /** Forks `name` (output in <dir>/<name>.log) to wait for its start. */
  fork(name: string, entry: string, env: Record<string, string> = {}): this {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (this.waiting.size === 0) process.on('exit', this.killOnExit);
    const forked = forkLogged(
      name,
      entry,
      join(this.dir, `${name}.log`),
      { ...env, [AWAIT_START_ENV]: '1' },
      ' ahead',
    );
    forked.child.on('error', () => undefined);
    this.waiting.get(name)?.child.kill('SIGKILL');
    this.waiting.set(name, { ...forked, entry, env: JSON.stringify(env) });
    return this;
  }

  /** The waiting child of `name`, if it is alive and was forked with this entry and env; it leaves the set. */
  take(name: string, entry: string, env: Record<string, string>): Forked | null {
    const w = this.waiting.get(name);
    if (!w) return null;
    this.waiting.delete(name);
    if (this.waiting.size === 0) process.off('exit', this.killOnExit);
    const alive = w.child.exitCode === null && w.child.signalCode === null && w.child.connected;
    if (alive && w.entry === entry && w.env === JSON.stringify(env)) return w;
    w.child.kill('SIGKILL');
    return null;
  }

  /** Ends every child not taken (SIGKILL: it holds no work, not even its configuration). */
  dispose(): void {
    for (const w of this.waiting.values()) w.child.kill('SIGKILL');
    this.waiting.clear();
    process.off('exit', this.killOnExit);
  }
}

/**
 * Runs one child process and keeps it running: a child that exits without being asked to (a
 * crash, SIGKILL, the OOM killer) is started again with backoff while its restart window lasts;
 * a child that reports a fatal error is not. Its stdout and stderr are appended to
 * <dir>/<name>.log, its pid is in <dir>/<name>.pid while it runs, and its progress events are
 * passed to `onEvent`. The child ends with the controller: it exits when the IPC channel closes.
 */
export class ChildSupervisor<E> {
  private child: ChildProcess | null = null;
  private stopping = false;
  private startedAt = 0;
  private logOffset = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private failureError: Error | null = null;
  private settle!: { resolve: () => void; reject: (e: Error) => void };
  private readonly tracker: RestartTracker;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');
  private prestarted: PrestartedChildren | undefined;
  /** Resolves when a job is done or the child was stopped; rejects with ChildProcessError. */
  readonly finished: Promise<void>;

  constructor(private readonly opts: ChildSupervisorOptions<E>) {
    this.tracker = new RestartTracker(opts.restart);
    this.prestarted = opts.prestarted;
    this.finished = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.finished.catch(() => undefined);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get pidFile(): string {
    return join(this.opts.dir, `${this.opts.name}.pid`);
  }

  get logFile(): string {
    return join(this.opts.dir, `${this.opts.name}.log`);
  }

  /** The error that ended supervision, once it did. */
  get failure(): Error | null {
    return this.failureError;
  }

  start(): this {
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    process.on('exit', this.killOnExit);
    this.spawn();
    return this;
  }

  private spawn(): void {
    this.restartTimer = null;
    const env = this.opts.env ?? {};
    // Only the first start takes a prestarted child: a restart forks afresh.
    const ahead = this.prestarted?.take(this.opts.name, this.opts.entry, env);
    this.prestarted = undefined;
    const { child, logOffset } = ahead ?? forkLogged(this.opts.name, this.opts.entry, this.logFile, env);
    if (ahead) child.send({ type: 'start' } satisfies ParentMessage, () => undefined);
    this.logOffset = logOffset;
    this.child = child;
    this.startedAt = Date.now();
    let done = false;
    let failed: { message: string; retriable: boolean; connectionLoss: boolean } | null = null;
    if (child.pid !== undefined) writeFileSync(this.pidFile, `${child.pid}\n`, { mode: 0o600 });
    child.on('message', (m: ChildMessage<E>) => {
      if (m.type === 'event') this.opts.onEvent?.(m.event);
      else if (m.type === 'done') done = true;
      else if (m.type === 'failed')
        failed = { message: m.message, retriable: m.retriable, connectionLoss: m.connectionLoss ?? false };
    });
    child.on('error', () => undefined);
    // 'close' (not 'exit') fires after the IPC channel drained, so every message has been seen.
    child.once('close', (code, signal) => this.onClose(child, code, signal, done, failed));
    this.opts.onLifecycle?.({
      process: this.opts.name,
      status: 'started',
      pid: child.pid,
      detail: `pid ${child.pid}, output in ${this.logFile}`,
    });
  }

  private onClose(
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    done: boolean,
    failed: { message: string; retriable: boolean; connectionLoss: boolean } | null,
  ): void {
    if (this.child !== child) return;
    this.child = null;
    rmSync(this.pidFile, { force: true });
    const name = this.opts.name;
    if (this.stopping || (this.opts.kind === 'job' && code === 0 && done)) {
      process.off('exit', this.killOnExit);
      this.opts.onLifecycle?.({
        process: name,
        status: this.stopping ? 'stopped' : 'done',
        pid: child.pid,
        detail: this.stopping ? 'stopped on request' : 'finished',
      });
      return this.settle.resolve();
    }
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const tail = this.tail();
    const output = tail.length ? `; its last output:\n    ${tail.join('\n    ')}` : '';
    if (failed && !failed.retriable)
      return this.giveUp(
        `${name} process (pid ${child.pid}) failed: ${failed.message} (see ${this.logFile})`,
      );
    const lost = failed?.connectionLoss ?? false;
    const delay = this.tracker.onCrash(Date.now() - this.startedAt, lost);
    if (delay === null) {
      const { windowMs, connectionWindowMs = windowMs } = this.opts.restart;
      const window = lost
        ? `${+(connectionWindowMs / 60_000).toFixed(2)} min for lost connections (options.retry.connectionMinutes)`
        : `${+(windowMs / 60_000).toFixed(2)} min (options.retry.otherMinutes)`;
      return this.giveUp(
        `${name} process (pid ${child.pid}) ${how}: ${this.tracker.attempts} unexpected exits within its retry window of ${window}; giving up${output}\n  full output in ${this.logFile}`,
      );
    }
    this.opts.onLifecycle?.({
      process: name,
      status: 'restarting',
      pid: child.pid,
      detail: `pid ${child.pid} ${how}${failed ? ` (${failed.message})` : ''}; restart ${this.tracker.attempts} in ${(delay / 1000).toFixed(1)}s${output}`,
    });
    this.restartTimer = setTimeout(() => {
      if (!this.stopping) this.spawn();
    }, delay);
  }

  private giveUp(message: string): void {
    process.off('exit', this.killOnExit);
    this.failureError = new ChildProcessError(this.opts.name, message);
    this.settle.reject(this.failureError);
  }

  /** The last lines the current incarnation wrote, secrets scrubbed. */
  private tail(): string[] {
    let fd: number | null = null;
    try {
      const size = statSync(this.logFile).size;
      const from = Math.max(this.logOffset, size - 64 * 1024);
      const buf = Buffer.alloc(size - from);
      fd = openSync(this.logFile, 'r');
      readSync(fd, buf, 0, buf.length, from);
      return buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() && !l.startsWith('--- pgferry '))
        .slice(-(this.opts.tailLines ?? 12))
        .map((l) => redactString(l).slice(0, 500));
    } catch {
      return [];
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }

  /**
   * Kills the running child (SIGKILL) because it is stuck (`reason`, reported): it is started
   * again as after a crash, within its restart window. No-op while none runs or when stopping.
   */
  restartNow(reason: string): void {
    const child = this.child;
    if (!child || this.stopping) return;
    this.opts.onLifecycle?.({
      process: this.opts.name,
      status: 'restarting',
      pid: child.pid,
      detail: `pid ${child.pid} is stuck: ${reason}; killing it to start it again`,
    });
    child.kill('SIGKILL');
  }

  /**
   * Asks the child to stop (IPC `stop`), kills it after the stop timeout, and resolves once it
   * has exited. Idempotent; a pending restart is cancelled.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
      process.off('exit', this.killOnExit);
      this.settle.resolve();
    }
    const child = this.child;
    if (!child) return this.finished.catch(() => undefined);
    const closed = new Promise<void>((r) => child.once('close', () => r()));
    if (child.connected) child.send({ type: 'stop' } satisfies ParentMessage, () => undefined);
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.opts.stopTimeoutMs ?? 15_000);
    try {
      await closed;
    } finally {
      clearTimeout(timer);
    }
  }
}
