import type { Kafka, Message } from 'kafkajs';
import type { FramedBatch } from './framed-batches';
import { KafkaBatchProducer, type BatchProducerOptions } from './kafka-batch-producer';
import { keyPartition } from './kafka-partitioner';
import { PartitionRecords } from '@pgferry/kafka-protocol';

export type PublisherOptions = BatchProducerOptions;

/**
 * Sends records to Kafka with acks=all and resolves only when Kafka acknowledged every one of
 * them: callers checkpoint (chunk done, LSN confirmed) after `publish` resolves, never before.
 * Records of one call keep their order per partition, and each is stored once (idempotent
 * producer: a retried batch is dropped by Kafka as a duplicate).
 *
 * A keyed record goes to the partition kafkajs' DefaultPartitioner and the Java client give it
 * (murmur2 of the key, see keyPartition), so change records follow their snapshot row; a
 * message's own `partition` wins; keyless records are spread round robin.
 */
export class KafkaPublisher {
  private readonly producer: KafkaBatchProducer;
  private roundRobin = 0;

  constructor(kafka: Kafka, options: PublisherOptions = {}) {
    this.producer = new KafkaBatchProducer(kafka, options);
  }

  /** Idempotent. */
  async connect(): Promise<void> {
    await this.producer.connect();
  }

  /** Partitions of a topic, for callers that partition records themselves (publishRecords). */
  partitionCount(topic: string): Promise<number> {
    return this.producer.partitionCount(topic);
  }

  async publish(topic: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    const n = await this.producer.partitionCount(topic);
    const parts = new Map<number, PartitionRecords>();
    for (const m of messages) {
      const key = toBuffer(m.key);
      const partition =
        m.partition ?? (key ? keyPartition(key, n) : (this.roundRobin = (this.roundRobin + 1) % n));
      let p = parts.get(partition);
      if (!p) parts.set(partition, (p = new PartitionRecords(partition)));
      p.push(key, toBuffer(m.value));
    }
    await this.producer.produce(topic, [...parts.values()]);
  }

  /**
   * Like publish, for records already grouped by partition (same partition choice as publish:
   * keyPartition of the key over partitionCount(topic)).
   */
  publishRecords(topic: string, parts: readonly PartitionRecords[]): Promise<void> {
    return this.producer.produce(topic, parts);
  }

  /** The largest record batch this publisher sends: build FramedBatches below it. */
  get maxBatchBytes(): number {
    return this.producer.maxBatchBytes;
  }

  /**
   * Like publishRecords, for batches framed as they were encoded (PartitionedBatches, same
   * partition choice as publish).
   */
  publishBatches(topic: string, batches: readonly FramedBatch[]): Promise<void> {
    return this.producer.produceBatches(topic, batches);
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}

function toBuffer(v: Buffer | string | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
}
