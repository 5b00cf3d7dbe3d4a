import type { Client } from 'pg';
import {
  APPLIER_TIMEOUTS,
  connect,
  endStaleSessions,
  resolveEndpoint,
  setSessionTimeouts,
} from '@pgferry/pg';
import { deadLetterTopic, transactionsTopic, type RegistryClient } from '@pgferry/avro';
import type { ControlStore } from '@pgferry/control';
import { SnapshotThrottle, type runSnapshotCapture, type runStreamCapture } from '@pgferry/capture';
import {
  FollowingApplier,
  PerKeyApplier,
  Throttle,
  TransactionalApplier,
  type ApplierTarget,
  type SnapshotApplier,
} from '@pgferry/apply';
import { APPLIER_SESSION_TIMEOUT_MS, registryTls, type KafkaClient } from './kafka-client';
import type { Emit } from './migration-event';
import { applierProcessName, LiveThrottle } from './throttle-live';
import type { ApplierSettings, CaptureSettings, StreamSettings } from './process-config';

/**
 * The options of each process's stage, built from its settings (process-config.ts) and the
 * clients of whoever runs it: the child entry (capture-process.ts, applier-process.ts) with its
 * own, the controller's in-process run with its own. Both run a process through these builders
 * only, so a child and an in-process run behave the same.
 */
export interface ProcessClients {
  kafka: KafkaClient;
  registry: RegistryClient;
  emit: Emit;
}

export type SnapshotCaptureOptions = Parameters<typeof runSnapshotCapture>[0];
export type StreamCaptureOptions = Parameters<typeof runStreamCapture>[0];
export type SnapshotApplierOptions = ConstructorParameters<typeof SnapshotApplier>[0];

/** Opens a connection of the applier to the destination (one per lane). */
/** An applier session this long idle in a transaction (or blocked on its client) is a dead applier's. */
const STALE_SESSION_MS = 20_000;

export function applierConnector(settings: Pick<ApplierSettings, 'spec'>): () => Promise<Client> {
  const dst = resolveEndpoint(settings.spec.destination, 'destination');
  const applicationName = `pgferry applier ${settings.spec.name}`;
  return async () => {
    const client = await connect(dst, 'destination', { applicationName });
    try {
      // Bounded waits and a dead network noticed (issue 19); a session a killed or cut-off
      // applier left inside a transaction would hold its row locks and block this one.
      await setSessionTimeouts(client, APPLIER_TIMEOUTS);
      await endStaleSessions(client, applicationName, STALE_SESSION_MS);
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  };
}

/** The snapshot capture: every pending chunk under the snapshot, checkpointed in `control`. */
export function snapshotCaptureOptions(
  settings: CaptureSettings,
  clients: ProcessClients & { control: ControlStore },
): SnapshotCaptureOptions {
  const { spec } = settings;
  const src = resolveEndpoint(spec.source, 'source');
  return {
    source: src,
    sourceDatabase: src.database,
    kafka: clients.kafka,
    registry: clients.registry,
    topicPrefix: settings.topicPrefix,
    partitions: settings.partitions,
    tables: settings.tables,
    control: clients.control,
    snapshotName: settings.snapshotName,
    chunkRows: spec.options.chunkRows,
    workers: spec.options.snapshotWorkers,
    compression: spec.options.snapshotCompression,
    onProgress: (p) => clients.emit({ kind: 'captured', ...p }),
    throttle: snapshotThrottle(settings, clients),
  };
}

/** options.throttle.full, kept at the limits in force through the capture's control connection. */
function snapshotThrottle(
  settings: CaptureSettings,
  clients: ProcessClients & { control: ControlStore },
): SnapshotCaptureOptions['throttle'] {
  const { spec } = settings;
  const live = new LiveThrottle(
    { task: spec.name, stage: 'full', process: 'capture', spec: spec.options.throttle, emit: clients.emit },
    new SnapshotThrottle(),
  );
  return { limiter: live.limiter as SnapshotThrottle, poll: () => live.poll(clients.control.client) };
}

/** The incremental phase's capture: the task's slot into the table topics until `stop`. */
export function streamCaptureOptions(
  settings: StreamSettings,
  clients: Omit<ProcessClients, 'registry'> & { stop: AbortSignal },
): StreamCaptureOptions {
  const { spec } = settings;
  return {
    task: spec.name,
    source: resolveEndpoint(spec.source, 'source'),
    destination: resolveEndpoint(spec.destination, 'destination'),
    tables: settings.tables,
    objects: spec.objects,
    schemaChangeRole: spec.options.schemaChanges.role,
    kafka: clients.kafka,
    registryUrl: settings.registryUrl,
    registryTls: registryTls(spec),
    prefix: settings.topicPrefix,
    partitions: settings.partitions,
    stop: clients.stop,
    retry: spec.options.retry,
    wholeTransactions: spec.options.consistency === 'transactional',
    onProgress: (p) => clients.emit({ kind: 'stream', ...p }),
    onSchemaChange: (e) => clients.emit({ kind: 'schema-change', ...e }),
    onNewTable: (e) => clients.emit({ kind: 'new-table', ...e }),
  };
}

/**
 * The full-data phase's applier. `destination` is its first lane; it opens the others. One per
 * task at a time (the controller starts the next only after the last stopped); its advisory
 * lock makes the destination refuse a second one anyway.
 */
export function snapshotApplierOptions(
  settings: ApplierSettings,
  clients: ProcessClients & { destination: Client },
): SnapshotApplierOptions {
  return {
    kafka: clients.kafka,
    registry: clients.registry,
    destination: clients.destination,
    connect: applierConnector(settings),
    group: settings.group,
    task: settings.spec.name,
    targets: settings.targets,
    deferredKeys: settings.deferredKeys,
    onApplied: (t, rows) => clients.emit({ kind: 'applied', table: `${t.schema}.${t.table}`, rows }),
  };
}

/**
 * The incremental phase's applier, per the task's options.consistency: per-key applies every
 * record kind by key on parallel lanes (PerKeyApplier); transactional applies whole source
 * transactions in commit order (TransactionalApplier). Both with the task's throttle and error
 * policy (poison records to `<prefix>.dlq` with dead-letter), over the tables the task started
 * with and those the stream gains while it runs (FollowingApplier).
 */
export function changeApplier(
  settings: Pick<ApplierSettings, 'spec' | 'group' | 'targets' | 'topicPrefix'>,
  clients: Omit<ProcessClients, 'emit'> & { emit?: Emit },
): FollowingApplier<PerKeyApplier | TransactionalApplier> {
  const connectDestination = applierConnector(settings);
  const { options } = settings.spec;
  // The supervised appliers share the task's limit; each of those run elsewhere has all of it.
  const live = new LiveThrottle(
    {
      task: settings.spec.name,
      stage: 'incremental',
      process: applierProcessName(),
      spec: options.throttle,
      share: options.stream.appliers,
      emit: clients.emit,
    },
    new Throttle({}),
  );
  const throttle = live.limiter as Throttle;
  return new FollowingApplier({
    onPoll: (control) => live.poll(control),
    task: settings.spec.name,
    targets: settings.targets,
    connect: connectDestination,
    create: (targets) => applierOver(settings, targets, clients, connectDestination, throttle),
  });
}

function applierOver(
  settings: Pick<ApplierSettings, 'spec' | 'group' | 'topicPrefix'>,
  targets: ApplierTarget[],
  clients: Omit<ProcessClients, 'emit'>,
  connectDestination: () => Promise<Client>,
  throttle: Throttle,
): PerKeyApplier | TransactionalApplier {
  const { options } = settings.spec;
  const common = {
    kafka: clients.kafka,
    registry: clients.registry,
    connect: connectDestination,
    group: settings.group,
    task: settings.spec.name,
    targets,
    throttle,
    onError: options.onError,
    deadLetterTopic: options.onError === 'dead-letter' ? deadLetterTopic(settings.topicPrefix) : undefined,
  };
  return options.consistency === 'transactional'
    ? new TransactionalApplier({ ...common, transactionsTopic: transactionsTopic(settings.topicPrefix) })
    : new PerKeyApplier({ ...common, membership: 'group', sessionTimeoutMs: APPLIER_SESSION_TIMEOUT_MS });
}
