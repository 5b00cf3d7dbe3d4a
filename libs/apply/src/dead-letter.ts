import { KafkaProducer, type KafkaClientConfig } from '@pgferry/kafka';

/** A record that could not be applied, as it came from its topic. */
export interface PoisonRecord {
  key: Buffer | null;
  value: Buffer | null;
  offset: bigint;
}

/**
 * The dead-letter topic (`<prefix>.dlq`) of `options.onError: dead-letter`: a record that cannot
 * be applied is parked there (acks=all, through the same idempotent producer as every record)
 * with why and where it came from, in the headers pgferry.reason, pgferry.topic,
 * pgferry.partition, pgferry.offset and pgferry.table, and counted. The appliers move their
 * offset past it only once `park` resolved, so a crash in between parks it a second time at
 * worst, never loses it.
 */
export class DeadLetters {
  private readonly producer: KafkaProducer;
  private connected = false;
  /** Records parked by this applier since it started. */
  count = 0;

  constructor(
    kafka: KafkaClientConfig,
    readonly topic: string,
  ) {
    this.producer = new KafkaProducer(kafka);
  }

  async connect(): Promise<void> {
    if (this.connected) return;
    await this.producer.connect();
    this.connected = true;
  }

  async park(
    record: PoisonRecord,
    reason: string,
    from: { topic: string; partition: number; table: string },
  ): Promise<void> {
    await this.connect();
    const text = (s: string) => Buffer.from(s, 'utf8');
    await this.producer.publish(this.topic, [
      {
        key: record.key,
        value: record.value,
        headers: [
          { key: 'pgferry.reason', value: text(reason) },
          { key: 'pgferry.topic', value: text(from.topic) },
          { key: 'pgferry.partition', value: text(String(from.partition)) },
          { key: 'pgferry.offset', value: text(record.offset.toString()) },
          { key: 'pgferry.table', value: text(from.table) },
        ],
      },
    ]);
    this.count++;
  }

  async close(): Promise<void> {
    await this.producer.close().catch(() => undefined);
  }
}
