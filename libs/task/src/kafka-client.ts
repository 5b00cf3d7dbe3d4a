import { readFileSync } from 'node:fs';
import { PgferryError, SpecError, type KafkaTlsSpec, type TaskSpec } from '@pgferry/core';
import { RegistryClient, registryUrlWithCredentials, type RegistryTlsOptions } from '@pgferry/avro';
import { withKafkaAdmin, type KafkaClientConfig, type KafkaTlsOptions } from '@pgferry/kafka';

/**
 * The Kafka client a task hands to its stages: pgferry's own client configuration (libs/kafka).
 * Every place in libs/task and apps/controller that creates or names one goes through this file.
 */
export type KafkaClient = KafkaClientConfig;

/**
 * How a process reaches Kafka: the brokers and, for a secured cluster, TLS (files as the spec
 * gives them, read by each process) and SASL. `ssl` is the spec's shorthand for `tls: {}`.
 */
export interface KafkaConnection {
  brokers: string[];
  ssl?: boolean;
  tls?: KafkaTlsSpec | null;
  sasl?: TaskSpec['kafka']['sasl'] | null;
}

/** The connection the spec describes, to `brokers` (the spec's, or --kafka's). */
export function specKafkaConnection(spec: Pick<TaskSpec, 'kafka'>, brokers: string[]): KafkaConnection {
  return { brokers, tls: spec.kafka.tls ?? (spec.kafka.ssl ? {} : null), sasl: spec.kafka.sasl ?? null };
}

/** PEM text given inline, or read from the file a path names; errors name the option. */
function pem(value: string | undefined, option: string): string | undefined {
  if (value === undefined || value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (err) {
    throw new SpecError([`${option}: cannot read ${value}: ${(err as Error).message}`], { cause: err });
  }
}

function tlsOptions(conn: KafkaConnection): KafkaTlsOptions | null {
  const tls = conn.tls ?? (conn.ssl ? {} : null);
  if (!tls) return null;
  return {
    ca: pem(tls.ca, 'kafka.tls.ca'),
    cert: pem(tls.cert, 'kafka.tls.cert'),
    key: pem(tls.key, 'kafka.tls.key'),
    servername: tls.serverName,
  };
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
  return { clientId, brokers: conn.brokers, tls: tlsOptions(conn), sasl: conn.sasl ?? null };
}

/**
 * The registry URL a process is given: `url` with the spec's kafka.schemaRegistry credentials as
 * its user info (a URL that carries its own, the embedded registry's, keeps them).
 */
export function specRegistryUrl(spec: Pick<TaskSpec, 'kafka'>, url: string): string {
  const auth = spec.kafka.schemaRegistry;
  if (!auth?.username || new URL(url).username) return url;
  return registryUrlWithCredentials(url, auth.username, auth.password ?? '');
}

/** TLS of the registry: the spec's kafka.schemaRegistry ca and serverName. */
export function registryTls(spec: Pick<TaskSpec, 'kafka'>): RegistryTlsOptions {
  const r = spec.kafka.schemaRegistry;
  return { ca: pem(r?.ca, 'kafka.schemaRegistry.ca'), servername: r?.serverName };
}

/** The registry client of a process: `url` (credentials in it) and the spec's registry CA. */
export function registryClient(spec: TaskSpec, url: string): RegistryClient {
  return new RegistryClient(url, registryTls(spec));
}

/** Creates `topic` with `partitions` partitions unless it exists (idempotent). */
export async function ensureTopic(kafka: KafkaClient, topic: string, partitions = 1): Promise<void> {
  await withKafkaAdmin(kafka, (admin) => admin.ensureTopics([{ name: topic, partitions }]));
}

/** The end (next offset) of every partition of `topics`, per "topic:partition". */
export function topicEnds(kafka: KafkaClient, topics: readonly string[]): Promise<Map<string, bigint>> {
  return withKafkaAdmin(kafka, (admin) => admin.topicEnds(topics));
}
