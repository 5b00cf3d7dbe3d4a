import type { Client } from 'pg';
import type { KafkaClientConfig } from '@pgferry/kafka';
import { connect, resolveEndpoint } from '@pgferry/pg';
import { RegistryClient, deadLetterTopic, transactionsTopic } from '@pgferry/avro';
import {
  SnapshotApplier,
  type ApplierTarget,
  PerKeyApplier,
  TransactionalApplier,
  FollowingApplier,
} from '@pgferry/apply';
import type { MigrationEvent } from './full-migration';
import { kafkaConfig, type ApplierProcessConfig } from './process-config';

/**
 * Session timeout of the change appliers in their consumer group. A killed applier's partitions
 * go to the other appliers once the broker notices the dead member, after this long. Each
 * fetched batch is applied well within it; a member that overran it would only be rebalanced,
 * and the offset fence in the destination keeps the two from applying a batch twice.
 */
const APPLIER_SESSION_TIMEOUT_MS = 10_000;

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
  const kafka = kafkaConfig(config.kafka, `pgferry-${spec.name}-applier`);
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
  kafka: KafkaClientConfig,
  registry: RegistryClient,
  connectDestination: () => Promise<Client>,
): FollowingApplier<PerKeyApplier | TransactionalApplier> {
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
  kafka: KafkaClientConfig,
  registry: RegistryClient,
  connectDestination: () => Promise<Client>,
): PerKeyApplier | TransactionalApplier {
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
    : new PerKeyApplier({ ...common, membership: 'group', sessionTimeoutMs: APPLIER_SESSION_TIMEOUT_MS });
}
