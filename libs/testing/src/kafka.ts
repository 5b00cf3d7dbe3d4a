import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './free-port';
import {
  brokerJvmFlags,
  CDS_QUIET,
  FORMAT_JVM_FLAGS,
  kafkaPaths,
  newClusterId,
  readDirState,
  serverProperties,
  writeDirState,
  type KafkaConfigValue,
  type KafkaDirState,
} from './kafka-config';
import { waitForKafkaReady } from './kafka-probe';
import { kafkaRuntime, type KafkaRuntime } from './kafka-runtime';

export interface StartKafkaOptions {
  /** Data directory; missing or empty is formatted, one from an earlier run is reused. Default: a fresh temp dir. */
  dataDir?: string;
  /** Client (PLAINTEXT) port on 127.0.0.1. Default: the data dir's earlier port, else a free one. */
  port?: number;
  /** KRaft controller port. Default: the data dir's earlier one (it is part of the formatted quorum), else free. */
  controllerPort?: number;
  /** JVM heap (-Xms = -Xmx), MB. Default 512. */
  heapMb?: number;
  /** server.properties overrides, e.g. { 'message.max.bytes': 10485760 }. */
  config?: Record<string, KafkaConfigValue>;
  /** Where the broker logs (log4j2 and the JVM's own output). Default: `<dataDir>/kafka.log`. */
  logFile?: string;
  /** How long a start may take until ready, ms. Default 90000. */
  readyTimeoutMs?: number;
  /** How long stop() waits for a clean exit before SIGKILL, ms. Default 30000. */
  stopTimeoutMs?: number;
  /** Start the JVM from a class-data-sharing archive, made on the first clean stop. Default true. */
  classDataSharing?: boolean;
}

export interface KafkaExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface KafkaBroker {
  /** `['127.0.0.1:<port>']`, for kafkajs' `brokers`. */
  readonly brokers: string[];
  /** `127.0.0.1:<port>`, for kcat `-b` and bootstrap.servers. */
  readonly bootstrap: string;
  readonly clusterId: string;
  readonly dataDir: string;
  readonly port: number;
  readonly controllerPort: number;
  readonly logFile: string;
  /** The running JVM's pid; 0 while stopped. */
  readonly pid: number;
  readonly running: boolean;
  /** Milliseconds the last start took until ready (formatting included on the first). */
  readonly startupMs: number;
  /** SIGTERM, a bounded wait for Kafka's clean shutdown, then SIGKILL. Keeps the data. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) as a crash would, and waits for the exit. Keeps the data. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the broker again on the same data dir and ports, after stop() or kill(); waits until ready. */
  start(): Promise<void>;
  /** stop(), then deletes the data dir when this fixture made it (a given one is kept). */
  remove(): Promise<void>;
  /** Resolves when the current JVM exits (at once when none runs). */
  exited(): Promise<KafkaExit>;
  /** The last `lines` lines of the log file. */
  logTail(lines?: number): string;
}

interface Jvm {
  child: ChildProcess;
  exit: Promise<KafkaExit>;
  done: KafkaExit | null;
}

/** Every JVM and temp dir this process started; the exit hook ends and removes them. */
const live = new Map<number, () => void>();
const tempDirs = new Set<string>();
let hooked = false;

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  // Synchronous by nature: SIGKILL is all an exiting process can still do. Where the process dies
  // without running this (a signal, SIGKILL), setpriv's parent-death signal kills the JVM instead.
  process.on('exit', () => {
    for (const kill of live.values()) kill();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * Starts a single-node Apache Kafka (KRaft broker+controller) on 127.0.0.1 and resolves once it is
 * ready for clients (see `waitForKafkaReady`). The JVM is tied to this Node process: it is killed
 * when this process exits, however it exits. On failure the error carries the tail of the log.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaBroker> {
  const rt = kafkaRuntime();
  installExitHook();
  const ownDir = options.dataDir === undefined;
  const dataDir = ownDir ? mkdtempSync(join(tmpdir(), 'pgferry-kafka-')) : resolve(options.dataDir!);
  if (ownDir) tempDirs.add(dataDir);
  try {
    const prior = readDirState(dataDir);
    const pickPorts = prior === null && options.port === undefined && options.controllerPort === undefined;
    for (let attempt = 1; ; attempt++) {
      const t0 = Date.now();
      const state = prior ?? (await formatNew(rt, dataDir, options));
      const broker = new Broker(rt, dataDir, ownDir, state, options);
      try {
        await broker.start(t0);
        return broker;
      } catch (err) {
        // A free port can be taken between probing and binding: with ports of our choosing, retry.
        const clash = /Address already in use|BindException/.test(broker.logTail(200));
        if (!(pickPorts && clash && attempt < 3)) throw err;
        for (const f of readdirSync(dataDir)) rmSync(join(dataDir, f), { recursive: true, force: true });
      }
    }
  } catch (err) {
    if (ownDir) {
      rmSync(dataDir, { recursive: true, force: true });
      tempDirs.delete(dataDir);
    }
    throw err;
  }
}

/** Runs `fn` with a fresh broker and always removes it, whatever `fn` does. */
export async function usingKafka<T>(
  fn: (kafka: KafkaBroker) => Promise<T>,
  options?: StartKafkaOptions,
): Promise<T> {
  const kafka = await startKafka(options);
  try {
    return await fn(kafka);
  } finally {
    await kafka.remove();
  }
}

/**
 * A broker shared by the whole test run, named by PGFERRY_TEST_KAFKA_BROKERS (comma-separated
 * host:port), or null when that is unset or empty.
 */
export function kafkaFromEnv(): { brokers: string[] } | null {
  const brokers = (process.env.PGFERRY_TEST_KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  return brokers.length > 0 ? { brokers } : null;
}

async function formatNew(
  rt: KafkaRuntime,
  dataDir: string,
  options: StartKafkaOptions,
): Promise<KafkaDirState> {
  let port = options.port ?? (await freePort());
  let controllerPort = options.controllerPort ?? (await freePort());
  while (port === controllerPort) {
    if (options.controllerPort === undefined) controllerPort = await freePort();
    else if (options.port === undefined) port = await freePort();
    else throw new Error(`Kafka port and controllerPort are both ${port}: give two different ports`);
  }
  const state: KafkaDirState = { clusterId: newClusterId(), port, controllerPort };
  mkdirSync(dataDir, { recursive: true });
  const paths = kafkaPaths(dataDir);
  const logFile = logFileOf(dataDir, options);
  writeFileSync(paths.properties, serverProperties(dataDir, port, controllerPort, options.config));
  const args = [
    ...FORMAT_JVM_FLAGS,
    ...cdsFlags(rt, options, 'use'),
    ...logFlags(rt, logFile),
    '-cp',
    rt.classpath,
    'kafka.tools.StorageTool',
    'format',
    '-t',
    state.clusterId,
    '-c',
    paths.properties,
    '--standalone',
  ];
  const jvm = spawnJvm(rt, args, dataDir, logFile);
  const exit = await jvm.exit;
  if (exit.code !== 0) {
    throw new Error(
      `Kafka storage format of ${paths.storage} failed (exit ${exit.code ?? exit.signal})\n${tailSection(logFile, 40)}`,
    );
  }
  writeDirState(dataDir, state);
  return state;
}

class Broker implements KafkaBroker {
  readonly brokers: string[];
  readonly bootstrap: string;
  readonly clusterId: string;
  readonly port: number;
  readonly controllerPort: number;
  readonly logFile: string;
  startupMs = 0;
  private jvm: Jvm | null = null;
  private removed = false;

  constructor(
    private readonly rt: KafkaRuntime,
    readonly dataDir: string,
    private readonly ownDir: boolean,
    state: KafkaDirState,
    private readonly options: StartKafkaOptions,
  ) {
    this.port = options.port ?? state.port;
    this.controllerPort = options.controllerPort ?? state.controllerPort;
    this.clusterId = state.clusterId;
    this.bootstrap = `127.0.0.1:${this.port}`;
    this.brokers = [this.bootstrap];
    this.logFile = logFileOf(dataDir, options);
    if (this.port !== state.port || this.controllerPort !== state.controllerPort) {
      writeDirState(dataDir, { ...state, port: this.port, controllerPort: this.controllerPort });
    }
  }

  get pid(): number {
    return this.running ? (this.jvm!.child.pid ?? 0) : 0;
  }

  get running(): boolean {
    return this.jvm !== null && this.jvm.done === null;
  }

  async start(t0 = Date.now()): Promise<void> {
    if (this.removed)
      throw new Error(`Kafka broker ${this.bootstrap} was removed; start a new one with startKafka()`);
    if (this.running) throw new Error(`Kafka broker ${this.bootstrap} is already running (pid ${this.pid})`);
    const paths = kafkaPaths(this.dataDir);
    writeFileSync(
      paths.properties,
      serverProperties(this.dataDir, this.port, this.controllerPort, this.options.config),
    );
    const archive = cdsFlags(this.rt, this.options, 'make');
    const args = [
      ...brokerJvmFlags(this.options.heapMb ?? 512),
      ...archive,
      ...logFlags(this.rt, this.logFile),
      '-cp',
      this.rt.classpath,
      'kafka.Kafka',
      paths.properties,
    ];
    const logStart = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const jvm = spawnJvm(this.rt, args, this.dataDir, this.logFile);
    this.jvm = jvm;
    let ready = false;
    const dump = archive.find((a) => a.startsWith('-XX:ArchiveClassesAtExit='))?.split('=')[1];
    if (dump) void jvm.exit.then((e) => keepArchive(dump, ready && e.code !== null, this.rt));
    try {
      await waitForKafkaReady(this.bootstrap, {
        timeoutMs: this.options.readyTimeoutMs ?? 90_000,
        clusterId: this.clusterId,
        gone: () => (jvm.done ? `Kafka exited (${jvm.done.code ?? jvm.done.signal})` : null),
        exited: jvm.exit,
      });
      ready = true;
      this.startupMs = Date.now() - t0;
      jvm.child.unref();
    } catch (err) {
      await this.kill('SIGKILL');
      throw new Error(
        `Kafka on ${this.bootstrap} (data ${this.dataDir}) did not start: ${(err as Error).message}\n` +
          errorLines(this.logFile, logStart) +
          tailSection(this.logFile, 60),
      );
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const jvm = this.jvm!;
    jvm.child.ref();
    jvm.child.kill('SIGTERM');
    const stopTimeout = this.options.stopTimeoutMs ?? 30_000;
    if ((await within(jvm.exit, stopTimeout)) === null) await this.kill('SIGKILL');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    const jvm = this.jvm!;
    jvm.child.ref();
    jvm.child.kill(signal);
    if ((await within(jvm.exit, 30_000)) === null && signal !== 'SIGKILL') {
      jvm.child.kill('SIGKILL');
      await jvm.exit;
    } else {
      await jvm.exit;
    }
  }

  async remove(): Promise<void> {
    await this.stop();
    this.removed = true;
    if (this.ownDir) {
      rmSync(this.dataDir, { recursive: true, force: true });
      tempDirs.delete(this.dataDir);
    }
  }

  async exited(): Promise<KafkaExit> {
    return this.jvm ? this.jvm.exit : { code: null, signal: null };
  }

  logTail(lines = 60): string {
    return tailLines(this.logFile, lines);
  }
}

function logFileOf(dataDir: string, options: StartKafkaOptions): string {
  return options.logFile ? resolve(options.logFile) : kafkaPaths(dataDir).defaultLog;
}

function logFlags(rt: KafkaRuntime, logFile: string): string[] {
  return [`-Dlog4j2.configurationFile=${rt.log4jConfig}`, `-Dkafka.logs.file=${logFile}`];
}

/**
 * Class-data sharing: with an archive for this classpath and JVM, use it; without one, a broker
 * start ('make') asks the JVM to write one at exit, which keepArchive() moves into place after a
 * clean exit of a broker that was ready. The formatter ('use') only uses an existing one.
 */
function cdsFlags(rt: KafkaRuntime, options: StartKafkaOptions, mode: 'use' | 'make'): string[] {
  if (options.classDataSharing === false) return [];
  const archive = archivePath(rt);
  if (existsSync(archive)) return [`-XX:SharedArchiveFile=${archive}`, ...CDS_QUIET];
  if (mode === 'use') return [];
  const tmp = `${archive}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  return [`-XX:ArchiveClassesAtExit=${tmp}`, ...CDS_QUIET];
}

function archivePath(rt: KafkaRuntime): string {
  return join(rt.cacheDir, `kafka-cds-${rt.jvmKey}.jsa`);
}

function keepArchive(tmp: string, keep: boolean, rt: KafkaRuntime): void {
  try {
    if (keep && statSync(tmp).size > 0 && !existsSync(archivePath(rt))) renameSync(tmp, archivePath(rt));
  } catch {
    // No archive written (the JVM was killed): the next clean stop makes one.
  }
  rmSync(tmp, { force: true });
}

/**
 * Spawns the JVM with its output appended to the log file. On Linux it goes through setpriv
 * --pdeathsig KILL (util-linux), so the kernel kills it if this process dies without exit hooks.
 * The caller unref()s a broker once it is ready, so one left running never keeps Node alive.
 */
function spawnJvm(rt: KafkaRuntime, args: string[], cwd: string, logFile: string): Jvm {
  const fd = openSync(logFile, 'a');
  const setpriv = process.platform === 'linux' && existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : null;
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', rt.java, ...args]] : [rt.java, args];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { cwd, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const jvm: Jvm = { child, done: null, exit: Promise.resolve({ code: null, signal: null }) };
  jvm.exit = new Promise<KafkaExit>((resolveExit) => {
    const finish = (e: KafkaExit) => {
      if (jvm.done) return;
      jvm.done = e;
      if (child.pid !== undefined) live.delete(child.pid);
      resolveExit(e);
    };
    child.once('exit', (code, signal) => finish({ code, signal }));
    child.once('error', (err) => {
      writeFileSync(logFile, `\nspawn ${cmd} failed: ${err.message}\n`, { flag: 'a' });
      finish({ code: null, signal: null });
    });
  });
  if (child.pid !== undefined) {
    const pid = child.pid;
    live.set(pid, () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
  }
  return jvm;
}

async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last lines of a file, reading at most its last 256 KB. */
function tailLines(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const len = Math.min(size, 256 * 1024);
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, size - len);
  } finally {
    closeSync(fd);
  }
  const all = buf.toString('utf8').replace(/\n$/, '').split('\n');
  return all.slice(-lines).join('\n');
}

/** The ERROR and FATAL entries (with their first stack line) logged since `offset`, as a section. */
function errorLines(file: string, offset: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const len = Math.min(size - offset, 4 * 1024 * 1024);
  if (len <= 0) return '';
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, offset);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString('utf8').split('\n');
  const picked: string[] = [];
  for (let i = 0; i < lines.length && picked.length < 20; i++) {
    if (!/^\[[^\]]+\] (ERROR|FATAL) /.test(lines[i])) continue;
    picked.push(lines[i]);
    if (lines[i + 1] && !lines[i + 1].startsWith('[')) picked.push(lines[i + 1]);
  }
  return picked.length ? `--- errors logged by this start ---\n${picked.join('\n')}\n` : '';
}

function tailSection(file: string, lines: number): string {
  return `--- last ${lines} lines of ${file} ---\n${tailLines(file, lines)}`;
}
