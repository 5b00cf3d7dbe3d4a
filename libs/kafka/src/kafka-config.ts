import { PgferryError } from '@pgferry/core';

/**
 * How pgferry reaches a Kafka cluster: the embedded broker or any Kafka-compatible service.
 * Passwords live here and in the 0600 configuration files of the child processes, never in a
 * log line or an error message.
 */
export interface KafkaClientConfig {
  /** Bootstrap servers, host:port; the cluster's metadata names the rest. */
  brokers: string[];
  /** The client id Kafka logs and quotas see. */
  clientId: string;
  /** TLS for every connection: true for the system's CAs, or the options of tls.connect. */
  tls?: boolean | KafkaTlsOptions | null;
  sasl?: KafkaSaslOptions | null;
  /** How long a TCP (and TLS, SASL) connection may take to open. Default 10 s. */
  connectTimeoutMs?: number;
  /** How long a request may wait for its response, beyond its own wait (Fetch). Default 30 s. */
  requestTimeoutMs?: number;
}

export interface KafkaTlsOptions {
  /** PEM text of the CA certificates to trust (instead of the system's). */
  ca?: string;
  /** PEM text of the client certificate and its key, for brokers that require one. */
  cert?: string;
  key?: string;
  /** The name the broker's certificate must carry, when it is not the host connected to. */
  servername?: string;
  /** false only for tests against self-signed brokers; default true. */
  rejectUnauthorized?: boolean;
}

export interface KafkaSaslOptions {
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** host:port split, with the error naming the bad entry. */
export function parseBroker(address: string): { host: string; port: number } {
  const m = /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new PgferryError(`Kafka broker address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1], port };
}

/** The configuration checked once, before anything connects. */
export function checkKafkaConfig(config: KafkaClientConfig): void {
  if (!config.brokers.length) throw new PgferryError('no Kafka brokers given');
  for (const b of config.brokers) parseBroker(b);
  if (config.sasl && !config.sasl.username)
    throw new PgferryError('Kafka SASL needs a username (kafka.sasl.username)');
}
