import { ObjectError, retry, RetryDeadlineError, sleep } from '@pgferry/core';
import { ApiKey } from '@pgferry/kafka-protocol';
import { classifyKafkaError, kafkaError } from './kafka-errors';
import { KafkaCluster } from './kafka-cluster';
import type { KafkaClientConfig } from './kafka-config';

export interface TopicSpec {
  name: string;
  partitions: number;
  /** Default: the broker's default.replication.factor (-1, Kafka 2.4+), else 1. */
  replicationFactor?: number;
  /** Topic configs, e.g. { 'cleanup.policy': 'compact' }. */
  configs?: Record<string, string>;
}

const TOPIC_ALREADY_EXISTS = 36;
/** The configs a topic created later for a task copies from the task's others (specLike). */
const INHERITED_CONFIGS = [
  'cleanup.policy',
  'retention.ms',
  'retention.bytes',
  'max.message.bytes',
  'min.insync.replicas',
];
/** DescribeConfigs resource type of a topic. */
const TOPIC_RESOURCE = 2;
/** ListOffsets timestamps: the log's end (next offset) and its start. */
const LATEST = -1n;
const EARLIEST = -2n;
/** How long offsets are asked again after retriable failures. */
const RETRY_MS = 30_000;

/**
 * The admin calls pgferry makes: topics (create, list, delete), partition ends and starts.
 * Errors are classified PgferryErrors naming the topic.
 */
export class KafkaAdmin {
  constructor(private readonly cluster: KafkaCluster) {}

  /** The id of the cluster (from the Metadata response; null before Kafka 0.10.1). */
  get clusterId(): string | null {
    return this.cluster.clusterId;
  }

  /** How many brokers the cluster's metadata lists (what replication can be chosen from). */
  async brokerCount(): Promise<number> {
    try {
      await this.cluster.connect();
    } catch (err) {
      throw classifyKafkaError(err, 'reading the Kafka cluster metadata');
    }
    return this.cluster.nodeIds.length;
  }

  /**
   * The configs of each of `topics` as the broker applies them (defaults included), per topic.
   * A topic that does not exist is an ObjectError naming it.
   */
  async describeTopicConfigs(topics: readonly string[]): Promise<Map<string, Record<string, string | null>>> {
    const out = new Map<string, Record<string, string | null>>();
    if (!topics.length) return out;
    try {
      const conn = await this.cluster.anyConnection();
      const res = await conn.request(ApiKey.DescribeConfigs, {
        resources: topics.map((name) => ({
          resourceType: TOPIC_RESOURCE,
          resourceName: name,
          configurationKeys: null,
        })),
        includeSynonyms: false,
        includeDocumentation: false,
      });
      for (const r of res.results) {
        if (r.errorCode !== 0)
          throw kafkaError(
            r.errorCode,
            `describing the configs of Kafka topic ${r.resourceName}`,
            r.errorMessage,
          );
        out.set(r.resourceName, Object.fromEntries(r.configs.map((c) => [c.name, c.value])));
      }
      return out;
    } catch (err) {
      throw classifyKafkaError(err, `describing the configs of Kafka topics ${topics.join(', ')}`);
    }
  }

  /**
   * The spec of a topic created alongside `like` (a task's topics, as pgferry created them):
   * their replication, and the configs of the one with the largest max.message.bytes that
   * replay and wide rows depend on. Nothing when none of them exists.
   */
  async specLike(like: readonly string[]): Promise<Omit<TopicSpec, 'name' | 'partitions'>> {
    const existing = new Set(await this.listTopics());
    const names = like.filter((t) => existing.has(t));
    if (!names.length) return {};
    const configs = [...(await this.describeTopicConfigs(names)).values()];
    const widest = configs.reduce((a, b) =>
      Number(b['max.message.bytes'] ?? 0) > Number(a['max.message.bytes'] ?? 0) ? b : a,
    );
    const described = await this.cluster.describeTopics([names[0]]);
    const replicas = [...described.values()][0]?.[0]?.replicas?.length;
    const kept: Record<string, string> = {};
    for (const k of INHERITED_CONFIGS) if (widest[k] != null) kept[k] = widest[k]!;
    return { ...(replicas ? { replicationFactor: replicas } : {}), configs: kept };
  }

  /** Every topic of the cluster (internal ones included). */
  async listTopics(): Promise<string[]> {
    try {
      const conn = await this.cluster.anyConnection();
      const res = await conn.request(ApiKey.Metadata, { topics: null, allowAutoTopicCreation: false });
      return res.topics.map((t) => t.name);
    } catch (err) {
      throw classifyKafkaError(err, 'listing the Kafka topics');
    }
  }

  /**
   * Creates the topics that do not exist yet and waits until every partition has a leader.
   * Idempotent: existing topics are left as they are (their partition count included).
   */
  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    if (!topics.length) return;
    const existing = new Set(await this.listTopics());
    const missing = topics.filter((t) => !existing.has(t.name));
    if (missing.length) {
      try {
        const conn = await this.cluster.anyConnection();
        const version = conn.requireVersion(ApiKey.CreateTopics);
        const res = await conn.request(
          ApiKey.CreateTopics,
          {
            topics: missing.map((t) => ({
              name: t.name,
              numPartitions: t.partitions,
              replicationFactor: t.replicationFactor ?? (version >= 4 ? -1 : 1),
              assignments: [],
              configs: Object.entries(t.configs ?? {}).map(([name, value]) => ({ name, value })),
            })),
            timeoutMs: 30_000,
            validateOnly: false,
          },
          { version },
        );
        for (const r of res.topics)
          if (r.errorCode !== 0 && r.errorCode !== TOPIC_ALREADY_EXISTS)
            throw kafkaError(r.errorCode, `creating Kafka topic ${r.name}`, r.errorMessage);
      } catch (err) {
        throw classifyKafkaError(err, `creating Kafka topics ${missing.map((t) => t.name).join(', ')}`);
      }
    }
    await this.cluster.describeTopics(
      topics.map((t) => t.name),
      30_000,
      missing.length > 0,
    );
  }

  /**
   * Deletes topics (tests, and `--reset-topics`); missing ones are not an error. Kafka deletes
   * in the background: this waits until the metadata no longer lists them, so that a topic
   * created again right after is a new, empty one.
   */
  async deleteTopics(names: readonly string[]): Promise<void> {
    await this.requestDeletion(names);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const left = new Set(await this.listTopics());
      const still = names.filter((n) => left.has(n));
      if (!still.length) return;
      if (Date.now() > deadline)
        throw new ObjectError(
          `Kafka did not finish deleting topics ${still.join(', ')} within 60 s: check the brokers' logs (delete.topic.enable must be true) and run again`,
        );
      await sleep(200);
    }
  }

  private async requestDeletion(names: readonly string[]): Promise<void> {
    if (!names.length) return;
    try {
      const conn = await this.cluster.anyConnection();
      const res = await conn.request(ApiKey.DeleteTopics, { topicNames: [...names], timeoutMs: 30_000 });
      for (const r of res.responses)
        if (r.errorCode !== 0 && r.errorCode !== 3)
          throw kafkaError(r.errorCode, `deleting Kafka topic ${r.name}`);
    } catch (err) {
      throw classifyKafkaError(err, `deleting Kafka topics ${names.join(', ')}`);
    }
  }

  /**
   * The end (the next offset, i.e. the high watermark) of every partition of `topics`, per
   * "topic:partition": everything acknowledged so far lies below it.
   */
  topicEnds(topics: readonly string[]): Promise<Map<string, bigint>> {
    return this.offsets(topics, LATEST);
  }

  /** The first offset each partition of `topics` still holds (retention moves it). */
  topicStarts(topics: readonly string[]): Promise<Map<string, bigint>> {
    return this.offsets(topics, EARLIEST);
  }

  private async offsets(topics: readonly string[], timestamp: bigint): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    if (!topics.length) return out;
    const what = `reading the ${timestamp === LATEST ? 'end' : 'start'} offsets of Kafka topics ${topics.join(', ')}`;
    // Leaders move (NOT_LEADER_OR_FOLLOWER) and brokers restart: read the metadata again and retry.
    return retry(
      async () => {
        try {
          return await this.offsetsOnce(topics, timestamp, out);
        } catch (err) {
          await this.cluster.refreshMetadata().catch(() => undefined);
          throw classifyKafkaError(err, what);
        }
      },
      { deadlineMs: RETRY_MS, initialDelayMs: 100, maxDelayMs: 2000 },
    ).catch((err) => {
      throw err instanceof RetryDeadlineError ? err.cause : err;
    });
  }

  private async offsetsOnce(
    topics: readonly string[],
    timestamp: bigint,
    out: Map<string, bigint>,
  ): Promise<Map<string, bigint>> {
    {
      const described = await this.cluster.describeTopics(topics);
      const byLeader = new Map<number, Map<string, number[]>>();
      for (const [topic, parts] of described)
        for (const p of parts) {
          const m = byLeader.get(p.leader) ?? new Map<string, number[]>();
          byLeader.set(p.leader, m);
          m.set(topic, [...(m.get(topic) ?? []), p.partition]);
        }
      await Promise.all(
        [...byLeader].map(async ([leader, parts]) => {
          const conn = await this.cluster.connection(leader);
          const res = await conn.request(ApiKey.ListOffsets, {
            replicaId: -1,
            isolationLevel: 0,
            topics: [...parts].map(([name, ps]) => ({
              name,
              partitions: ps.map((partitionIndex) => ({ partitionIndex, currentLeaderEpoch: -1, timestamp })),
            })),
          });
          for (const t of res.topics)
            for (const p of t.partitions) {
              if (p.errorCode !== 0)
                throw kafkaError(
                  p.errorCode,
                  `reading the offsets of Kafka topic ${t.name} partition ${p.partitionIndex}`,
                );
              out.set(`${t.name}:${p.partitionIndex}`, p.offset);
            }
        }),
      );
      return out;
    }
  }
}

/** Runs `fn` with an admin on a cluster connection of its own, closed afterwards. */
export async function withKafkaAdmin<T>(
  config: KafkaClientConfig,
  fn: (admin: KafkaAdmin) => Promise<T>,
): Promise<T> {
  const cluster = new KafkaCluster(config);
  try {
    try {
      await cluster.connect();
    } catch (err) {
      throw classifyKafkaError(err, `connecting to Kafka ${config.brokers.join(',')}`);
    }
    return await fn(new KafkaAdmin(cluster));
  } finally {
    await cluster.close();
  }
}

/**
 * The id of the cluster `config` reaches (Metadata v2+), on a connection of its own: what a
 * task's run records and every process checks (libs/control runs).
 */
export async function kafkaClusterId(config: KafkaClientConfig): Promise<string> {
  const id = await withKafkaAdmin(config, async (admin) => admin.clusterId);
  if (!id)
    throw new ObjectError(
      `Kafka ${config.brokers.join(',')} gives no cluster id in its metadata: pgferry needs Kafka 0.11 or later`,
    );
  return id;
}
