import { PgferryError, type TaskSpec } from '@pgferry/core';
import { withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';

/**
 * The Kafka client a task hands to its stages: pgferry's own client configuration (libs/kafka).
 * Every place in libs/task and apps/controller that creates or names one goes through this file.
 */
export type KafkaClient = KafkaClientConfig;

/** How a process reaches Kafka: the brokers and, for a secured cluster, TLS and SASL. */
export interface KafkaConnection {
  brokers: string[];
  ssl?: boolean;
  sasl?: TaskSpec['kafka']['sasl'];
}

/**
 * Session timeout of the change appliers in their consumer group. A killed applier's partitions
 * go to the other appliers once the broker notices the dead member, after this long. Each
 * fetched batch is applied well within it; a member that overran it would only be rebalanced,
 * and the offset fence in the destination keeps the two from applying a batch twice.
 */
export const APPLIER_SESSION_TIMEOUT_MS = 10_000;

/** The client of one process, named `clientId` in the broker's logs. */
export function kafkaClient(conn: KafkaConnection, clientId: string): KafkaClient {
  if (!conn.brokers.length) throw new PgferryError('no Kafka brokers given');
  return { clientId, brokers: conn.brokers, tls: conn.ssl || null, sasl: conn.sasl ?? null };
}

/** Creates `topic` with `partitions` partitions unless it exists (idempotent). */
export async function ensureTopic(kafka: KafkaClient, topic: string, partitions = 1): Promise<void> {
  await withKafkaAdmin(kafka, (admin) => admin.ensureTopics([{ name: topic, partitions }]));
}

/** The end (next offset) of every partition of `topics`, per "topic:partition". */
export function topicEnds(kafka: KafkaClient, topics: readonly string[]): Promise<Map<string, bigint>> {
  return withKafkaAdmin(kafka, (admin) => admin.topicEnds(topics));
}
