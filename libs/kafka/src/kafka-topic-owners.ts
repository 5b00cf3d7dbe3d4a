import { ObjectError } from '@pgferry/core';
import { forEachRecordView, recordHeader } from '@pgferry/kafka-protocol';
import type { KafkaAdmin } from './kafka-admin';
import type { KafkaClientConfig } from './kafka-config';
import { KafkaPartitionFetcher } from './kafka-partition-fetcher';

/** What a topic holds, for telling a task's own topics from foreign ones. */
export interface TopicHolding {
  topic: string;
  /** Records retained in the topic (from each partition's log start to its end). */
  records: bigint;
  /**
   * Records that cannot be the run's: those of the partitions the run recorded no start offset
   * for (a run records a partition's start before its first record there, so it has none
   * there). Records from a recorded start on are the run's: the appliers refuse any other.
   */
  foreignRecords: bigint;
  /**
   * Whose the foreign records are, by the run header of the first of them in one partition ("" for
   * a record without the header); read for the first `probeTopics` foreign topics only, to name
   * them, and empty for the others.
   */
  runs: Set<string>;
}

/** Fetch limits for reading one record per partition: small, a large batch still comes whole (KIP-74). */
const PROBE_BYTES = 64 * 1024;
/** Rounds to read the first record of every probed partition (they take turns at the head of a fetch). */
const PROBE_ROUNDS = 50;

/**
 * For each existing topic of `topics`: how many records it holds, how many cannot be of the run
 * whose start offsets are `startOffsets` (per "topic:partition"; empty for a new run), and whose
 * those are (the run header of one record of each of the first `probeTopics` such topics). Cheap
 * on a task of many topics: offsets in one request per broker, records read only to name
 * foreign ones. Read-only: no consumer group.
 */
export async function topicHoldings(
  admin: KafkaAdmin,
  kafka: KafkaClientConfig,
  topics: readonly string[],
  header: string,
  startOffsets: ReadonlyMap<string, bigint> = new Map(),
  probeTopics = 10,
): Promise<TopicHolding[]> {
  const existing = new Set(await admin.listTopics());
  const names = topics.filter((t) => existing.has(t));
  if (!names.length) return [];
  const [starts, ends] = await Promise.all([admin.topicStarts(names), admin.topicEnds(names)]);
  const holdings = new Map(
    names.map((t) => [t, { topic: t, records: 0n, foreignRecords: 0n, runs: new Set<string>() }]),
  );
  // The first partition of each topic with foreign records: the first `probeTopics` topics, in
  // the order given, are read to say whose.
  const first = new Map<string, [string, bigint]>();
  for (const [tp, end] of ends) {
    const start = starts.get(tp) ?? 0n;
    const topic = tp.slice(0, tp.lastIndexOf(':'));
    const h = holdings.get(topic)!;
    h.records += end - start;
    if (startOffsets.has(tp) || end <= start) continue;
    h.foreignRecords += end - start;
    if (!first.has(topic)) first.set(topic, [tp, start]);
  }
  const probe = new Map(
    names
      .filter((t) => first.has(t))
      .slice(0, probeTopics)
      .map((t) => first.get(t)!),
  );
  if (probe.size) await readFirstRuns(kafka, probe, header, holdings);
  return [...holdings.values()];
}

async function readFirstRuns(
  kafka: KafkaClientConfig,
  probe: Map<string, bigint>,
  header: string,
  holdings: Map<string, TopicHolding>,
): Promise<void> {
  const fetcher = new KafkaPartitionFetcher(
    { ...kafka, clientId: `${kafka.clientId}-topic-probe` },
    { maxWaitMs: 100, maxBytesPerPartition: PROBE_BYTES, maxBytes: PROBE_BYTES, retryDeadlineMs: 30_000 },
  );
  const topics = [...new Set([...probe.keys()].map((tp) => tp.slice(0, tp.lastIndexOf(':'))))];
  try {
    await fetcher.describe(topics);
    fetcher.assign(
      [...probe].map(([tp, offset]) => ({
        topic: tp.slice(0, tp.lastIndexOf(':')),
        partition: Number(tp.slice(tp.lastIndexOf(':') + 1)),
        offset,
      })),
    );
    const left = new Set(probe.keys());
    for (let round = 0; left.size && round < PROBE_ROUNDS; round++) {
      for (const data of await fetcher.fetch()) {
        const tp = `${data.topic}:${data.partition}`;
        if (!left.has(tp)) continue;
        let run: string | null = null;
        for (const b of data.batches) {
          forEachRecordView(b, data.from, `Kafka topic ${data.topic} partition ${data.partition}`, (r) => {
            if (run !== null) return;
            let value: Buffer | null = null;
            try {
              value = recordHeader(r, header);
            } catch {
              value = null;
            }
            run = value ? value.toString('latin1') : '';
          });
          if (run !== null) break;
        }
        if (run === null && data.nextOffset < data.highWatermark) continue;
        left.delete(tp);
        fetcher.pause(data.topic, data.partition);
        holdings.get(data.topic)!.runs.add(run ?? '');
      }
    }
    if (left.size)
      throw new ObjectError(
        `could not read the first record of Kafka ${[...left].join(', ')} within ${PROBE_ROUNDS} fetches, to tell which run wrote it; check the brokers and run again`,
      );
  } finally {
    await fetcher.close();
  }
}
