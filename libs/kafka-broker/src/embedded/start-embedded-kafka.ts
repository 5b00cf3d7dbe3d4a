import type { Logger } from '@pgferry/core';
import { startSchemaRegistry, type SchemaRegistryServer } from '@pgferry/registry';
import type { BrokerOptions } from '../server/broker-state';
import { KafkaServer, type ListenerSecurity } from '../server/kafka-server';
import type { BrokerSaslUser } from '../server/sasl-server';
import { BrokerSchemaLog } from './broker-schema-log';

export interface EmbeddedKafkaOptions extends BrokerOptions, ListenerSecurity {
  /** Schema registry HTTP port; 0 picks a free one; null starts no registry. */
  registryPort?: number | null;
  /** Broker and registry warnings (bad frames, closed connections); silent when absent. */
  logger?: Logger;
}

export interface EmbeddedKafka {
  /** host:port for Kafka clients. */
  brokers: string[];
  /** http://host:port of the schema registry, when started (credentials not included). */
  registryUrl?: string;
  /** The user Kafka clients authenticate as (SASL) and the registry's basic auth, when required. */
  credentials?: BrokerSaslUser;
  broker: KafkaServer;
  registry?: SchemaRegistryServer;
  /** Stops the registry, then the broker (flushing every log). Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the single-node Kafka-protocol broker and, on top of its `_schemas` topic, the
 * Confluent-compatible schema registry, in this process. With `sasl`, both require its user:
 * Kafka clients by SASL, registry clients by HTTP basic auth. Everything lives under `dataDir`;
 * starting again on the same directory resumes with every acknowledged record, committed offset
 * and registered schema.
 */
export async function startEmbeddedKafka(options: EmbeddedKafkaOptions): Promise<EmbeddedKafka> {
  const broker = await KafkaServer.start(options, options.logger);
  let registry: SchemaRegistryServer | undefined;
  if (options.registryPort !== null) {
    try {
      const quiet = { debug: () => undefined, warn: () => undefined, error: () => undefined };
      registry = await startSchemaRegistry({
        log: new BrokerSchemaLog(broker.state),
        port: options.registryPort ?? 0,
        host: options.host ?? '127.0.0.1',
        logger: options.logger ?? quiet,
        basicAuth: options.sasl ?? null,
        tls: options.tls ?? null,
      });
    } catch (err) {
      await broker.close();
      throw err;
    }
  }
  let closed = false;
  return {
    brokers: [`${broker.state.host}:${broker.port}`],
    registryUrl: registry?.url,
    credentials: options.sasl ?? undefined,
    broker,
    registry,
    async close() {
      if (closed) return;
      closed = true;
      await registry?.close();
      await broker.close();
    },
  };
}
