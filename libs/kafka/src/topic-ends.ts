import type { Kafka } from 'kafkajs';

/**
 * The end (high watermark) of every partition of `topics`, per "topic:partition": everything
 * acknowledged so far lies below it.
 */
export async function topicEnds(kafka: Kafka, topics: readonly string[]): Promise<Map<string, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = new Map<string, bigint>();
    for (const topic of topics)
      for (const p of await admin.fetchTopicOffsets(topic))
        ends.set(`${topic}:${p.partition}`, BigInt(p.high));
    return ends;
  } finally {
    await admin.disconnect();
  }
}
