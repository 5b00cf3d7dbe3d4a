import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '@pgferry/pg';
import {
  brokerJvmFlags,
  FORMAT_JVM_FLAGS,
  kafkaPaths,
  newClusterId,
  readDirState,
  serverProperties,
  writeDirState,
  type KafkaConfigValue,
  type KafkaDirState,
} from './kafka-config';
import {
  cdsFlags,
  installExitHook,
  keepArchive,
  logFlags,
  spawnJvm,
  startReaper,
  tempDirs,
  within,
  type Jvm,
  type KafkaExit,
  type Reaper,
} from './kafka-jvm';
import { waitForKafkaReady } from './kafka-probe';
import { kafkaRuntime, type KafkaRuntime } from './kafka-runtime';
import { errorLines, tailLines, tailSection } from './log-tail';

export type { KafkaExit } from './kafka-jvm';

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
  /** Extra broker JVM flags, after the defaults (so they win), e.g. ['-XX:+UseSerialGC']. */
  jvmFlags?: string[];
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

/**
 * Starts a single-node Apache Kafka (KRaft broker+controller) on 127.0.0.1 and resolves once it is
 * ready for clients (see `waitForKafkaReady`). The JVM is tied to this Node process: it is killed
 * when this process exits, however it exits (exit hook, parent-death signal, reaper), and so is a
 * temp data dir deleted. On failure the error carries the log's ERROR lines and tail.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaBroker> {
  const rt = kafkaRuntime();
  installExitHook();
  const ownDir = options.dataDir === undefined;
  const dataDir = ownDir ? mkdtempSync(join(tmpdir(), 'pgferry-kafka-')) : resolve(options.dataDir!);
  if (ownDir) tempDirs.add(dataDir);
  const reaper = startReaper(ownDir ? dataDir : '');
  try {
    const prior = readDirState(dataDir);
    const pickPorts = prior === null && options.port === undefined && options.controllerPort === undefined;
    for (let attempt = 1; ; attempt++) {
      const t0 = Date.now();
      const state = prior ?? (await formatNew(rt, dataDir, options, reaper));
      const broker = new Broker(rt, dataDir, ownDir, state, options, reaper);
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
    reaper.release();
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
  reaper: Reaper,
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
    ...cdsFlags(rt, options.classDataSharing !== false, 'use'),
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
  const jvm = spawnJvm(rt, args, dataDir, logFile, reaper);
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
    private readonly reaper: Reaper,
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
    const archive = cdsFlags(this.rt, this.options.classDataSharing !== false, 'make');
    const args = [
      ...brokerJvmFlags(this.options.heapMb ?? 512),
      ...(this.options.jvmFlags ?? []),
      ...archive,
      ...logFlags(this.rt, this.logFile),
      '-cp',
      this.rt.classpath,
      'kafka.Kafka',
      paths.properties,
    ];
    const logStart = existsSync(this.logFile) ? statSync(this.logFile).size : 0;
    const jvm = spawnJvm(this.rt, args, this.dataDir, this.logFile, this.reaper);
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
    this.reaper.release();
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
