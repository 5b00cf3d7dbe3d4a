import { PgferryError } from '@pgferry/core';
import { KafkaPartitionFetcher, KafkaProducer, withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import { forEachRecordView } from '@pgferry/kafka-protocol';
import type { SchemaLog, SchemaLogRecord } from './schema-log';
import {
  startSchemaRegistry,
  type SchemaRegistryServer,
  type SchemaRegistryServerOptions,
} from './http-registry-server';

export interface KafkaSchemaLogOptions {
  kafka: KafkaClientConfig;
  /** The registry's topic; Confluent's default `_schemas`. */
  topic?: string;
  /** Replication factor of the topic when this log creates it; default the broker's default. */
  replicationFactor?: number;
}

/**
 * The registry's store on a real Kafka cluster: the compacted, single-partition `_schemas`
 * topic in Confluent Schema Registry's layout (the same JSON keys and values the embedded
 * broker's log keeps), created when missing (one partition, cleanup.policy compact, the
 * broker's default replication). `load` reads the partition from its start to its end;
 * `append` resolves once Kafka acknowledged the record (acks=all, idempotent producer).
 *
 * One registry writes a topic at a time: ids are assigned from what `load` read, so a second
 * registry on the same topic must not take writes (Confluent elects a leader for this; pgferry's
 * registry is run once per task or per deployment, and tests give each registry its own topic).
 */
export class KafkaSchemaLog implements SchemaLog {
  private readonly topic: string;
  private readonly producer: KafkaProducer;
  private ready: Promise<void> | null = null;

  constructor(private readonly opts: KafkaSchemaLogOptions) {
    this.topic = opts.topic ?? '_schemas';
    this.producer = new KafkaProducer(opts.kafka);
  }

  private prepare(): Promise<void> {
    this.ready ??= (async () => {
      await withKafkaAdmin(this.opts.kafka, async (admin) => {
        const replicas = this.opts.replicationFactor;
        await admin.ensureTopics([
          {
            name: this.topic,
            partitions: 1,
            replicationFactor: replicas,
            configs: { 'cleanup.policy': 'compact' },
          },
        ]);
      });
      await this.producer.connect();
    })();
    this.ready.catch(() => (this.ready = null));
    return this.ready;
  }

  async load(): Promise<SchemaLogRecord[]> {
    await this.prepare();
    const end = (await withKafkaAdmin(this.opts.kafka, (admin) => admin.topicEnds([this.topic]))).get(
      `${this.topic}:0`,
    )!;
    const start = (await withKafkaAdmin(this.opts.kafka, (admin) => admin.topicStarts([this.topic]))).get(
      `${this.topic}:0`,
    )!;
    const out: SchemaLogRecord[] = [];
    if (end <= start) return out;
    const fetcher = new KafkaPartitionFetcher(this.opts.kafka, {
      maxWaitMs: 100,
      maxBytesPerPartition: 4 << 20,
      maxBytes: 16 << 20,
    });
    try {
      await fetcher.connect([this.topic], () => start);
      let next = start;
      while (next < end) {
        for (const data of await fetcher.fetch()) {
          for (const b of data.batches)
            forEachRecordView(b, data.from, `Kafka topic ${this.topic}`, (r) => {
              if (r.keyStart < 0 || BigInt(r.offset) >= end) return;
              out.push({
                key: Buffer.from(r.buf.subarray(r.keyStart, r.keyEnd)),
                value: r.valueStart < 0 ? null : Buffer.from(r.buf.subarray(r.valueStart, r.valueEnd)),
              });
            });
          next = data.nextOffset;
        }
      }
    } finally {
      await fetcher.close();
    }
    return out;
  }

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    await this.prepare();
    try {
      await this.producer.publish(this.topic, [{ key, value, partition: 0 }]);
    } catch (err) {
      // The producer's errors are typed (classifyKafkaError): keep whether a retry can help.
      const typed = err instanceof PgferryError ? err : null;
      throw new PgferryError(`writing the schema registry's topic ${this.topic}: ${(err as Error).message}`, {
        cause: err,
        retriable: typed?.retriable ?? false,
        code: typed?.code,
      });
    }
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}

export interface KafkaRegistryOptions extends KafkaSchemaLogOptions {
  /** HTTP port; 0 picks a free one. */
  port?: number;
  host?: string;
  logger?: SchemaRegistryServerOptions['logger'];
  /** HTTP basic auth the registry's own clients must give. */
  basicAuth?: SchemaRegistryServerOptions['basicAuth'];
}

/**
 * A Confluent-compatible schema registry whose schemas live in a topic of a real Kafka (the
 * standalone `pgferry registry --kafka`): replays the topic, then serves. `close` stops serving
 * and the log's producer.
 */
export async function startKafkaRegistry(options: KafkaRegistryOptions): Promise<SchemaRegistryServer> {
  const log = new KafkaSchemaLog(options);
  let server: SchemaRegistryServer;
  try {
    server = await startSchemaRegistry({
      log,
      port: options.port ?? 0,
      host: options.host,
      logger: options.logger,
      basicAuth: options.basicAuth,
    });
  } catch (err) {
    await log.close().catch(() => undefined);
    throw err;
  }
  return {
    ...server,
    close: async () => {
      await server.close();
      await log.close();
    },
  };
}
