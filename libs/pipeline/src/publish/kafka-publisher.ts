import type { Kafka, Producer, Message } from 'kafkajs';
import { ConnectionError } from '@pgferry/core';
import { KeyPartitioner } from './kafka-partitioner';

export interface PublisherOptions {
  /** kafkajs idempotent producer: Kafka drops retried duplicates, so a record is stored once. */
  idempotent?: boolean;
  /** At most this many bytes of unacknowledged messages per `publish` call's send. */
  maxBatchBytes?: number;
}

/**
 * Sends records to Kafka with acks=all and resolves only when Kafka acknowledged every one of
 * them: callers checkpoint (chunk done, LSN confirmed) after `publish` resolves, never before.
 * Messages of one call keep their order per partition.
 */
export class KafkaPublisher {
  private producer: Producer;
  private connected = false;

  constructor(
    kafka: Kafka,
    private readonly options: PublisherOptions = {},
  ) {
    this.producer = kafka.producer({
      idempotent: options.idempotent ?? true,
      maxInFlightRequests: options.idempotent === false ? undefined : 1,
      allowAutoTopicCreation: false,
      createPartitioner: KeyPartitioner,
    });
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    try {
      await this.producer.connect();
      this.connected = true;
    } catch (err) {
      throw new ConnectionError(`connecting the Kafka producer: ${(err as Error).message}`, { cause: err });
    }
  }

  async publish(topic: string, messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    const max = this.options.maxBatchBytes ?? 8 * 1024 * 1024;
    let start = 0;
    while (start < messages.length) {
      let size = 0;
      let end = start;
      while (end < messages.length && (end === start || size < max)) {
        const m = messages[end++];
        size += (m.value as Buffer | null)?.length ?? 0;
        size += (m.key as Buffer | null)?.length ?? 0;
      }
      await this.producer.send({ topic, acks: -1, messages: messages.slice(start, end) });
      start = end;
    }
  }

  async close(): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    await this.producer.disconnect();
  }
}
