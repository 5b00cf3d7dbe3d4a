import { createLogger, PgferryError } from '@pgferry/core';
import { checkKafkaConfig } from '@pgferry/kafka';
import { startKafkaRegistry } from '@pgferry/registry';

export interface RegistryCommandOptions {
  kafka: string;
  port: string;
  host: string;
  topic: string;
}

/**
 * `pgferry registry --kafka HOST:PORT`: pgferry's Confluent-compatible schema registry over a
 * real Kafka, its schemas in the compacted `_schemas` topic there (Confluent's layout), for
 * teams without a registry of their own. Prints its URL once it serves; stops on SIGINT or
 * SIGTERM. Run one per topic: a second registry on the same topic must not take writes.
 */
export async function runRegistryCommand(opts: RegistryCommandOptions): Promise<number> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new PgferryError(`--port must be a port number, got ${JSON.stringify(opts.port)}`);
  const kafka = {
    brokers: opts.kafka
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean),
    clientId: 'pgferry-registry',
  };
  checkKafkaConfig(kafka);
  const log = createLogger({ name: 'pgferry-registry' });
  const registry = await startKafkaRegistry({ kafka, topic: opts.topic, port, host: opts.host, logger: log });
  process.stdout.write(
    `pgferry registry: schema registry ${registry.url}, schemas in Kafka topic ${opts.topic} of ${kafka.brokers.join(',')}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await registry.close();
  return 0;
}
