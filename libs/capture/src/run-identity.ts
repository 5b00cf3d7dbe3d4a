import type { Client } from 'pg';
import { readSourceIdentity } from '@pgferry/pg';
import { kafkaClusterId, type KafkaClientConfig } from '@pgferry/kafka';
import type { SeenIdentity } from '@pgferry/control';

/**
 * What a process that reads the source and writes Kafka sees of a run's identity (libs/control
 * runs): the source's system identifier and database, and the Kafka cluster id. Read-only.
 */
export async function seenIdentity(
  source: Pick<Client, 'query'>,
  kafka: KafkaClientConfig,
): Promise<Required<SeenIdentity>> {
  const [src, kafkaCluster] = await Promise.all([readSourceIdentity(source), kafkaClusterId(kafka)]);
  return { sourceSystem: src.systemId, sourceDatabase: src.database, kafkaCluster };
}
