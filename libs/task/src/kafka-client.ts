import { Kafka, logLevel, type ConsumerConfig, type KafkaConfig } from 'kafkajs';
import { PgferryError, type TaskSpec } from '@pgferry/core';

/**
 * The Kafka client a task hands to its stages. Every place in libs/task and apps/controller that
 * creates, names or uses one beyond passing it on goes through this file, so that the client
 * behind it changes here only.
 */
export type KafkaClient = Kafka;

/** How a process reaches Kafka: the brokers and, for a secured cluster, TLS and SASL. */
export interface KafkaConnection {
  brokers: string[];
  ssl?: boolean;
  sasl?: TaskSpec['kafka']['sasl'];
}

/**
 * Session timeout of the applier's consumer. A killed applier's partitions go to its successor
 * once the broker notices the dead member, after this long (kafkajs' default is 30 s). Each
 * fetched batch is applied well within it; a member that overran it would only be rebalanced,
 * and its successor resumes from the offsets stored with the rows.
 */
const APPLIER_SESSION_TIMEOUT_MS = 10_000;

/** A client whose consumers default to the applier's session timeout and heartbeat. */
class ApplierKafka extends Kafka {
  override consumer(config: ConsumerConfig) {
    return super.consumer({ sessionTimeout: APPLIER_SESSION_TIMEOUT_MS, heartbeatInterval: 1000, ...config });
  }
}

function kafkaConfig(conn: KafkaConnection, clientId: string): KafkaConfig {
  if (!conn.brokers.length) throw new PgferryError('no Kafka brokers given');
  return {
    clientId,
    brokers: conn.brokers,
    logLevel: logLevel.NOTHING,
    ssl: conn.ssl || undefined,
    sasl: conn.sasl as never,
  };
}

/**
 * The client of one process, named `clientId` in the broker's logs. `applier`: its consumers
 * leave a dead member's partitions to its successor within APPLIER_SESSION_TIMEOUT_MS.
 */
export function kafkaClient(
  conn: KafkaConnection,
  clientId: string,
  role: 'controller' | 'capture' | 'applier' = 'controller',
): KafkaClient {
  const config = kafkaConfig(conn, clientId);
  return role === 'applier' ? new ApplierKafka(config) : new Kafka(config);
}

/** Creates `topic` with `partitions` partitions unless it exists (idempotent). */
export async function ensureTopic(kafka: KafkaClient, topic: string, partitions = 1): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  } finally {
    await admin.disconnect();
  }
}
