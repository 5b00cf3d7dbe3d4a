import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { addKnownSecret, writePrivateFile } from '@pgferry/core';
import type { EmbeddedKafka } from '@pgferry/kafka-broker';

/** The user of a run's embedded broker (SASL) and registry (HTTP basic auth). */
export interface EmbeddedCredentials {
  username: string;
  password: string;
}

/** The file, in the work dir, where users' own Kafka clients find the credentials. */
export const CREDENTIALS_FILE = 'kafka-client.properties';

/**
 * A new secret for one run of `pgferry migrate` on the embedded broker: 32 random bytes, masked
 * in every log line and error of this process from now on. It reaches the children only in
 * their 0600 configuration files.
 */
export function newEmbeddedCredentials(): EmbeddedCredentials {
  const password = randomBytes(32).toString('base64url');
  addKnownSecret(password);
  return { username: 'pgferry', password };
}

/**
 * Writes `<workDir>/kafka-client.properties` (0600): librdkafka's properties, so that
 * `kcat -F <file> -L` attaches as is, with the registry's address and its basic auth for the
 * Confluent clients. Removed by `removeCredentialsFile` when the broker stops (the secret dies
 * with it). Returns the file's path.
 */
export function writeCredentialsFile(
  workDir: string,
  kafka: EmbeddedKafka,
  credentials: EmbeddedCredentials,
): string {
  const file = join(workDir, CREDENTIALS_FILE);
  writeClientProperties(file, kafka, credentials);
  return file;
}

/** The librdkafka properties of `kafka` and its user, written 0600 to `file`. */
export function writeClientProperties(
  file: string,
  kafka: EmbeddedKafka,
  credentials: EmbeddedCredentials,
): void {
  const lines = [
    '# An embedded Kafka broker and schema registry of pgferry (migrate, or pgferry broker).',
    '# Valid while it runs; a new start has a new password. Keep this file private (0600).',
    '# kcat -F <this file> -L   (librdkafka properties; kafkajs: sasl { mechanism, username, password })',
    `# schema registry: ${kafka.registryUrl ?? 'none'} (HTTP basic auth, same username and password;`,
    '# Confluent clients: basic.auth.credentials.source=USER_INFO, basic.auth.user.info=username:password)',
    `bootstrap.servers=${kafka.brokers.join(',')}`,
    'security.protocol=SASL_PLAINTEXT',
    'sasl.mechanisms=SCRAM-SHA-256',
    `sasl.username=${credentials.username}`,
    `sasl.password=${credentials.password}`,
    '',
  ];
  writePrivateFile(file, lines.join('\n'));
}

export function removeCredentialsFile(workDir: string): void {
  rmSync(join(workDir, CREDENTIALS_FILE), { force: true });
}
