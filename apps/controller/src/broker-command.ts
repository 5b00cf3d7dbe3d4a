import { rmSync } from 'node:fs';
import { createLogger, PgferryError } from '@pgferry/core';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { newEmbeddedCredentials, writeClientProperties } from './embedded-credentials';

export interface BrokerCommandOptions {
  dataDir: string;
  port: string;
  registryPort: string;
  host: string;
  flush: string;
  partitions: string;
  /** Require SASL and registry basic auth with a new secret, written to this file (0600). */
  credentialsFile?: string;
}

function intOption(value: string, name: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new PgferryError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * `pgferry broker`: the embedded Kafka-protocol broker and schema registry as a long-running
 * process. Prints one line with both addresses once they accept connections; stops cleanly
 * (flushing every log) on SIGINT or SIGTERM.
 */
export async function runBrokerCommand(opts: BrokerCommandOptions): Promise<number> {
  const flush = opts.flush === 'batch' ? 'batch' : intOption(opts.flush, 'flush', 1);
  const registryPort = opts.registryPort === 'none' ? null : intOption(opts.registryPort, 'registry-port', 0);
  const log = createLogger({ name: 'pgferry-broker' });
  const credentials = opts.credentialsFile ? newEmbeddedCredentials() : null;
  const kafka = await startEmbeddedKafka({
    sasl: credentials,
    dataDir: opts.dataDir,
    port: intOption(opts.port, 'port', 0),
    host: opts.host,
    registryPort,
    flush,
    defaultPartitions: intOption(opts.partitions, 'partitions', 1),
    logger: log,
  });
  if (credentials) writeClientProperties(opts.credentialsFile!, kafka, credentials);
  process.stdout.write(
    `pgferry broker: kafka ${kafka.brokers.join(',')}${kafka.registryUrl ? `, schema registry ${kafka.registryUrl}` : ''}, data ${opts.dataDir}${credentials ? `, credentials in ${opts.credentialsFile}` : ''}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await kafka.close();
  if (credentials) rmSync(opts.credentialsFile!, { force: true });
  return 0;
}
