import type { Client } from 'pg';
import { Kafka, type ConsumerConfig } from 'kafkajs';
import { connect, resolveEndpoint } from '@pgferry/pg';
import { RegistryClient, deadLetterTopic, transactionsTopic } from '@pgferry/avro';
import {
  SnapshotApplier,
  type ApplierTarget,
  TopicApplier,
  TransactionalApplier,
  FollowingApplier,
} from '@pgferry/apply';
import type { MigrationEvent } from './full-migration';
import { kafkaConfig, type ApplierProcessConfig } from './process-config';

/**
 * Session timeout of the applier's consumer. A killed applier's partitions go to its successor
 * once the broker notices the dead member, after this long (kafkajs' default is 30 s). Each
 * fetched batch is applied well within it; a member that overran it would only be rebalanced,
 * and its successor resumes from the offsets stored with the rows.
 */
const APPLIER_SESSION_TIMEOUT_MS = 10_000;

/** A kafkajs client whose consumers default to the applier's session timeout and heartbeat. */
class ApplierKafka extends Kafka {
  override consumer(config: ConsumerConfig) {
    return super.consumer({ sessionTimeout: APPLIER_SESSION_TIMEOUT_MS, heartbeatInterval: 1000, ...config });
  }
}

/**
 * The body of `apps/applier`: consumes the table topics and applies them until `stop` aborts,
 * then leaves the group. Fails when the applier fails (a record it cannot apply, a lost
 * destination connection); its offsets live in the destination, so a restart neither loses
 * nor repeats a row.
 */
export async function runApplierProcess(
  config: ApplierProcessConfig,
  emit: (e: MigrationEvent) => void,
  stop: AbortSignal,
): Promise<void> {
  const { spec } = config;
  const dst = resolveEndpoint(spec.destination, 'destination');
  const destination = await connect(dst, 'destination', { applicationName: 'pgferry applier' });
  const kafka = new ApplierKafka(kafkaConfig(config.kafka, `pgferry-${spec.name}-applier`));
  const registry = new RegistryClient(config.registryUrl);
  const applier =
    config.mode === 'changes'
      ? changeApplier(config, kafka, registry, () =>
          connect(dst, 'destination', { applicationName: 'pgferry applier' }),
        )
      : new SnapshotApplier({
          kafka,
          registry,
          destination,
          connect: () => connect(dst, 'destination', { applicationName: 'pgferry applier' }),
          // The controller runs one snapshot applier per task (supervised-full-data.ts) and
          // restarts it only after it exited; the advisory lock refuses a second one anyway.
          exclusive: true,
          group: config.group,
          targets: config.targets,
          deferredKeys: config.deferredKeys,
          onApplied: (t, rows) => emit({ kind: 'applied', table: `${t.schema}.${t.table}`, rows }),
        });
  try {
    await applier.start();
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (applier.error) {
          clearInterval(poll);
          reject(applier.error);
        }
      }, 100);
      const done = () => {
        clearInterval(poll);
        resolve();
      };
      if (stop.aborted) done();
      else stop.addEventListener('abort', done, { once: true });
    });
  } finally {
    await applier.stop().catch(() => undefined);
    await destination.end().catch(() => undefined);
  }
}

/**
 * The incremental phase's applier, per the task's options.consistency: per-key applies every
 * record kind by key on parallel lanes (TopicApplier); transactional applies whole source
 * transactions in commit order (TransactionalApplier). Both with the task's throttle and error
 * policy (poison records to `<prefix>.dlq` with dead-letter), over the tables the task started
 * with and those the stream gains while it runs (FollowingApplier).
 */
export function changeApplier(
  config: Pick<ApplierProcessConfig, 'spec' | 'group' | 'targets' | 'topicPrefix'>,
  kafka: Kafka,
  registry: RegistryClient,
  connectDestination: () => Promise<Client>,
): FollowingApplier<TopicApplier | TransactionalApplier> {
  return new FollowingApplier({
    task: config.spec.name,
    targets: config.targets,
    connect: connectDestination,
    create: (targets) => applierOver(config, targets, kafka, registry, connectDestination),
  });
}

function applierOver(
  config: Pick<ApplierProcessConfig, 'spec' | 'group' | 'topicPrefix'>,
  targets: ApplierTarget[],
  kafka: Kafka,
  registry: RegistryClient,
  connectDestination: () => Promise<Client>,
): TopicApplier | TransactionalApplier {
  const { options } = config.spec;
  const common = {
    kafka,
    registry,
    connect: connectDestination,
    group: config.group,
    targets,
    throttle: options.throttle,
    onError: options.onError,
    deadLetterTopic: options.onError === 'dead-letter' ? deadLetterTopic(config.topicPrefix) : undefined,
  };
  return options.consistency === 'transactional'
    ? new TransactionalApplier({ ...common, transactionsTopic: transactionsTopic(config.topicPrefix) })
    : new TopicApplier(common);
}
