import {
  addKnownSecret,
  createLogger,
  parseKafkaSection,
  PgferryError,
  readTaskSpecFile,
  type TaskSpec,
} from '@pgferry/core';
import { checkKafkaConfig } from '@pgferry/kafka';
import { startKafkaRegistry } from '@pgferry/registry';
import { kafkaClient, specKafkaConnection } from '@pgferry/task';

export interface RegistryCommandOptions {
  kafka: string;
  port: string;
  host: string;
  topic: string;
  /**
   * A YAML or JSON file shaped like a spec's `kafka` section: tls, sasl, allowPlaintextSasl for
   * the Kafka it keeps the schemas in; schemaRegistry.username and password, the basic auth its
   * own clients must give.
   */
  kafkaConfig?: string;
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
  const brokers = opts.kafka
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  let section: TaskSpec['kafka'] | null = null;
  if (opts.kafkaConfig) {
    section = parseKafkaSection(readTaskSpecFile(opts.kafkaConfig, process.env), opts.kafkaConfig);
    addKnownSecret(section.sasl?.password);
    addKnownSecret(section.schemaRegistry?.password);
  }
  const kafka = section
    ? kafkaClient(specKafkaConnection({ kafka: section }, brokers), 'pgferry-registry')
    : { brokers, clientId: 'pgferry-registry' };
  checkKafkaConfig(kafka);
  const log = createLogger({ name: 'pgferry-registry' });
  const auth = section?.schemaRegistry;
  const registry = await startKafkaRegistry({
    kafka,
    topic: opts.topic,
    port,
    host: opts.host,
    logger: log,
    basicAuth: auth?.username ? { username: auth.username, password: auth.password ?? '' } : null,
  });
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
