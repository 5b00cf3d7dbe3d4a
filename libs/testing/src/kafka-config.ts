import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What a data directory of the test broker holds, besides Kafka's own storage. */
export interface KafkaDirState {
  clusterId: string;
  port: number;
  controllerPort: number;
}

export type KafkaConfigValue = string | number | boolean;

/** Files inside a data directory: one broker+controller, one place. */
export function kafkaPaths(dataDir: string) {
  return {
    state: join(dataDir, 'pgferry-kafka.json'),
    properties: join(dataDir, 'server.properties'),
    /** log.dirs: the metadata log and the topics' partitions. */
    storage: join(dataDir, 'storage'),
    defaultLog: join(dataDir, 'kafka.log'),
  };
}

/**
 * Reads the state of a data directory: null when it is missing or empty (to be formatted), the
 * state when it holds a broker this fixture formatted. Anything else is refused: formatting would
 * mix Kafka's files with whatever is there.
 */
export function readDirState(dataDir: string): KafkaDirState | null {
  if (!existsSync(dataDir) || readdirSync(dataDir).length === 0) return null;
  const paths = kafkaPaths(dataDir);
  const meta = join(paths.storage, 'meta.properties');
  if (!existsSync(paths.state) || !existsSync(meta)) {
    throw new Error(
      `Kafka data directory ${dataDir} is not empty and holds no broker formatted by pgferry ` +
        `(no pgferry-kafka.json and storage/meta.properties): pass an empty or missing directory, or one from an earlier run`,
    );
  }
  let state: KafkaDirState;
  try {
    state = JSON.parse(readFileSync(paths.state, 'utf8')) as KafkaDirState;
  } catch (err) {
    throw new Error(
      `Kafka data directory ${dataDir}: unreadable pgferry-kafka.json (${(err as Error).message})`,
    );
  }
  const formatted = /^cluster\.id=(.+)$/m.exec(readFileSync(meta, 'utf8'))?.[1]?.trim();
  if (
    typeof state.clusterId !== 'string' ||
    formatted !== state.clusterId ||
    !Number.isInteger(state.port) ||
    !Number.isInteger(state.controllerPort)
  ) {
    throw new Error(
      `Kafka data directory ${dataDir}: pgferry-kafka.json does not match storage/meta.properties ` +
        `(cluster id ${String(state.clusterId)} vs ${String(formatted)}): remove the directory to start afresh`,
    );
  }
  return state;
}

export function writeDirState(dataDir: string, state: KafkaDirState): void {
  writeFileSync(kafkaPaths(dataDir).state, `${JSON.stringify(state, null, 2)}\n`);
}

/** A cluster id as Kafka's `Uuid.randomUuid()` makes it: 16 random bytes, base64url, no leading '-'. */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/**
 * server.properties of a single-node KRaft broker+controller on 127.0.0.1, set for tests: every
 * internal topic has one replica and one partition, groups rebalance at once, topics are only
 * created explicitly (as pgferry does), and thread pools are small for a 2-core machine.
 * `overrides` win over every default here.
 */
export function serverProperties(
  dataDir: string,
  port: number,
  controllerPort: number,
  overrides: Record<string, KafkaConfigValue> = {},
): string {
  const settings: Record<string, KafkaConfigValue> = {
    'process.roles': 'broker,controller',
    'node.id': 1,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    // --standalone formatting records this controller as the one voter; no controller.quorum.voters.
    'controller.quorum.bootstrap.servers': `127.0.0.1:${controllerPort}`,
    'log.dirs': kafkaPaths(dataDir).storage,
    'auto.create.topics.enable': false,
    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    'share.coordinator.state.topic.num.partitions': 1,
    'group.initial.rebalance.delay.ms': 0,
    // After a kill, the restarted controller refuses the broker's new registration until the old
    // one's session times out (default 9 s); 3 s keeps kill + start short and still rides out
    // a few seconds of a starved CPU, with heartbeats every 0.5 s.
    'broker.session.timeout.ms': 3000,
    'broker.heartbeat.interval.ms': 500,
    'num.network.threads': 2,
    'num.io.threads': 2,
    'background.threads': 2,
    'num.recovery.threads.per.data.dir': 1,
    'num.replica.fetchers': 1,
    'log.cleaner.threads': 1,
    ...overrides,
  };
  const lines = Object.entries(settings).map(([k, v]) => {
    if (!/^[a-zA-Z0-9._-]+$/.test(k))
      throw new Error(`Kafka config key ${JSON.stringify(k)} is not a property name`);
    if (/[\r\n]/.test(String(v))) throw new Error(`Kafka config ${k}: the value must be one line`);
    return `${k}=${String(v).replace(/\\/g, '\\\\')}`;
  });
  return `# Written by @pgferry/testing startKafka() on every start; edits are overwritten.\n${lines.join('\n')}\n`;
}

/**
 * The broker JVM's flags. Kafka's own defaults (G1, 20 ms pause goal, heap fixed at start) keep
 * steady-state throughput; startup time is won by class-data sharing instead of by trading away the
 * JIT (TieredStopAtLevel=1 starts about as fast but runs the broker on C1 code only).
 */
export function brokerJvmFlags(heapMb: number): string[] {
  return [
    `-Xms${heapMb}m`,
    `-Xmx${heapMb}m`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    '-Djava.awt.headless=true',
  ];
}

/** The storage formatter runs for about a second: small heap, C1 only, serial GC. */
export const FORMAT_JVM_FLAGS = ['-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1'];

/** Silences the JVM's class-data-sharing warnings, which would otherwise land in the log. */
export const CDS_QUIET = ['-Xlog:cds=off', '-Xlog:cds+dynamic=off'];
