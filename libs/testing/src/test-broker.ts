import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KafkaClientConfig } from '@pgferry/kafka';
import { startEmbeddedKafka } from '@pgferry/kafka-broker';
import { startKafkaRegistry } from '@pgferry/registry';
import { startKafka, type KafkaBroker } from './kafka';

/**
 * Which Kafka the suites that go through Kafka run against: pgferry's embedded broker (default)
 * or real Apache Kafka (PGFERRY_TEST_BROKER=kafka, the jest project integration-kafka). The same
 * test file runs on both; it takes its broker from startTestBroker and never asks which it got,
 * but for what only one of them can do (kill the JVM, read the embedded broker's files).
 */
export type TestBrokerKind = 'embedded' | 'kafka';

export function testBrokerKind(): TestBrokerKind {
  const kind = process.env.PGFERRY_TEST_BROKER ?? 'embedded';
  if (kind !== 'embedded' && kind !== 'kafka')
    throw new Error(`PGFERRY_TEST_BROKER must be embedded or kafka, got ${JSON.stringify(kind)}`);
  return kind;
}

export interface TestBroker {
  readonly kind: TestBrokerKind;
  /** host:port of the broker, for any Kafka client. */
  readonly brokers: string[];
  /** The Confluent-compatible registry the records' schemas go to. */
  readonly registryUrl: string;
  /** pgferry's client configuration for this broker. */
  client(clientId?: string): KafkaClientConfig;
  /** The real broker, on real Kafka (restart and kill tests); null on the embedded one. */
  readonly kafka: KafkaBroker | null;
  /**
   * An outage: stops the broker (the embedded one with its registry), waits `ms`, and starts it
   * again on the same ports and data, every acknowledged record kept.
   */
  stopFor(ms: number): Promise<void>;
  /** Stops the registry and the broker and removes their data. Idempotent. */
  close(): Promise<void>;
}

/**
 * A broker and schema registry for one test file: the embedded broker with its registry, or a
 * real Kafka 4.x (startKafka) with pgferry's registry over it (its schemas in a topic of its
 * own). Everything lives under a fresh temp dir, removed by close.
 */
export async function startTestBroker(kind: TestBrokerKind = testBrokerKind()): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), `pgferry-test-${kind}-`));
  const client =
    (brokers: string[]) =>
    (clientId = 'pgferry-test') => ({ brokers, clientId });
  if (kind === 'embedded') {
    let embedded = await startEmbeddedKafka({ dataDir: dir, port: 0, registryPort: 0 });
    let closed = false;
    const port = Number(embedded.brokers[0].split(':').pop());
    const registryPort = Number(new URL(embedded.registryUrl!).port);
    return {
      kind,
      brokers: embedded.brokers,
      registryUrl: embedded.registryUrl!,
      client: client(embedded.brokers),
      kafka: null,
      async stopFor(ms) {
        await embedded.close();
        await new Promise((r) => setTimeout(r, ms));
        embedded = await startEmbeddedKafka({ dataDir: dir, port, registryPort });
      },
      async close() {
        if (closed) return;
        closed = true;
        await embedded.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const kafka = await startKafka({ dataDir: join(dir, 'kafka') });
  try {
    const registry = await startKafkaRegistry({
      kafka: { brokers: kafka.brokers, clientId: 'pgferry-test-registry' },
      topic: `_schemas_${randomBytes(4).toString('hex')}`,
      port: 0,
    });
    let closed = false;
    return {
      kind,
      brokers: kafka.brokers,
      registryUrl: registry.url,
      client: client(kafka.brokers),
      kafka,
      async stopFor(ms) {
        await kafka.stop();
        await new Promise((r) => setTimeout(r, ms));
        await kafka.start();
      },
      async close() {
        if (closed) return;
        closed = true;
        await registry.close().catch(() => undefined);
        await kafka.remove();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await kafka.remove();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The `kafka` section of a task spec for a task run on `broker`: empty on the embedded broker
 * (migrate then starts one of its own, under its work dir, as users get it), the brokers and
 * registry of real Kafka otherwise.
 */
export function taskKafka(broker: TestBroker | null): Record<string, unknown> {
  if (!broker || broker.kind === 'embedded') return {};
  return { kafka: { brokers: broker.brokers, schemaRegistryUrl: broker.registryUrl } };
}

/**
 * For the suites that run `pgferry migrate` (in-process or as a command): on real Kafka, starts
 * one broker and registry for the file and points every migrate at them through KAFKA_BROKERS
 * and SCHEMA_REGISTRY_URL (what users set); on the embedded broker does nothing (migrate starts
 * its own under its work dir). Call in beforeAll; `stop` in afterAll unsets the variables.
 */
export async function brokerForTasks(): Promise<{ broker: TestBroker | null; stop(): Promise<void> }> {
  if (testBrokerKind() === 'embedded') return { broker: null, stop: async () => undefined };
  const broker = await startTestBroker('kafka');
  process.env.KAFKA_BROKERS = broker.brokers.join(',');
  process.env.SCHEMA_REGISTRY_URL = broker.registryUrl;
  return {
    broker,
    async stop() {
      delete process.env.KAFKA_BROKERS;
      delete process.env.SCHEMA_REGISTRY_URL;
      await broker.close();
    },
  };
}
