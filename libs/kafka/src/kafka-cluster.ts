import { ConnectionError, PgferryError, retry, RetryDeadlineError, TransientError } from '@pgferry/core';
import { ApiKey, type MetadataResponse } from '@pgferry/kafka-protocol';
import { BrokerConnection } from './broker-connection';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  parseBroker,
  type KafkaClientConfig,
} from './kafka-config';
import { kafkaError, missingTopic } from './kafka-errors';

/** A partition as the metadata has it. */
export interface PartitionInfo {
  partition: number;
  /** -1 when the partition has no leader right now. */
  leader: number;
  replicas: number[];
  isr: number[];
}

/**
 * Connections to use per purpose: Fetch requests wait on the broker (long poll), and Kafka
 * answers a connection's requests in order, so they get a connection of their own, as the Java
 * client and kafkajs do.
 */
export type Lane = 'main' | 'fetch';

const UNKNOWN_TOPIC = 3;
const LEADER_NOT_AVAILABLE = 5;

/**
 * The client's view of one Kafka cluster: its brokers (from the bootstrap servers and then the
 * metadata), one connection per broker and lane, opened on demand and again after it failed,
 * the partitions and leaders of the topics asked about, and the coordinator of each group.
 * Each producer, fetcher and group member has its own cluster object. Metadata is refreshed
 * when a caller asks (after an error says it is stale), never behind its back.
 */
export class KafkaCluster {
  readonly config: Required<Pick<KafkaClientConfig, 'connectTimeoutMs' | 'requestTimeoutMs'>> &
    KafkaClientConfig;
  private readonly brokers = new Map<number, { host: string; port: number }>();
  private readonly connections = new Map<string, Promise<BrokerConnection>>();
  private readonly topics = new Map<string, PartitionInfo[]>();
  private readonly coordinators = new Map<string, number>();
  private bootstrap: Promise<BrokerConnection> | null = null;
  private controllerId = -1;
  private closed = false;
  /** The cluster id from the metadata (Kafka 0.10.1+), null before connect. */
  clusterId: string | null = null;

  constructor(config: KafkaClientConfig) {
    this.config = {
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      ...config,
    };
  }

  /** Reaches a bootstrap server and reads the cluster's brokers. Idempotent. */
  async connect(): Promise<void> {
    if (this.closed) throw new ConnectionError('the Kafka client was closed');
    if (this.brokers.size && this.clusterId !== null) return;
    await this.refreshMetadata([]);
  }

  /** The node ids of the brokers the metadata lists. */
  get nodeIds(): number[] {
    return [...this.brokers.keys()];
  }

  /** A connection to broker `nodeId` for `lane`, opened if there is none or it failed. */
  connection(nodeId: number, lane: Lane = 'main'): Promise<BrokerConnection> {
    const key = `${nodeId}/${lane}`;
    const open = this.connections.get(key);
    if (open) {
      const alive = open.then((c) => (c.closed ? this.reopen(key, nodeId) : c));
      return alive;
    }
    return this.reopen(key, nodeId);
  }

  private reopen(key: string, nodeId: number): Promise<BrokerConnection> {
    if (this.closed) return Promise.reject(new ConnectionError('the Kafka client was closed'));
    const addr = this.brokers.get(nodeId);
    if (!addr)
      return Promise.reject(
        new ConnectionError(`Kafka broker ${nodeId} is not in the cluster's metadata (any more)`),
      );
    const opening = BrokerConnection.open(
      this.connectionOptions(addr.host, addr.port, `Kafka broker ${nodeId} (${addr.host}:${addr.port})`),
    );
    this.connections.set(key, opening);
    opening.catch(() => {
      if (this.connections.get(key) === opening) this.connections.delete(key);
    });
    return opening;
  }

  /** A connection to any broker: the controller if known, else the first that answers. */
  async anyConnection(): Promise<BrokerConnection> {
    const ids = [...this.brokers.keys()];
    if (this.controllerId >= 0)
      ids.sort((a, b) => (a === this.controllerId ? -1 : b === this.controllerId ? 1 : 0));
    let last: unknown = null;
    for (const id of ids) {
      try {
        return await this.connection(id);
      } catch (err) {
        last = err;
      }
    }
    try {
      return await this.bootstrapConnection();
    } catch (err) {
      throw last ?? err;
    }
  }

  private async bootstrapConnection(): Promise<BrokerConnection> {
    const current = this.bootstrap && (await this.bootstrap.catch(() => null));
    if (current && !current.closed) return current;
    const attempt = (async () => {
      if (!this.config.brokers.length)
        throw new PgferryError('no Kafka bootstrap servers given: set kafka.brokers (host:port, ...)');
      let last: unknown = null;
      for (const b of this.config.brokers) {
        const { host, port } = parseBroker(b);
        try {
          return await BrokerConnection.open(
            this.connectionOptions(host, port, `Kafka bootstrap server ${b}`),
          );
        } catch (err) {
          last = err;
        }
      }
      throw last;
    })();
    this.bootstrap = attempt;
    return attempt;
  }

  private connectionOptions(host: string, port: number, label: string) {
    return {
      host,
      port,
      label,
      clientId: this.config.clientId,
      tls: this.config.tls,
      sasl: this.config.sasl,
      connectTimeoutMs: this.config.connectTimeoutMs,
      requestTimeoutMs: this.config.requestTimeoutMs,
    };
  }

  /**
   * Reads the metadata of `topics` (default: every topic asked about so far) and the brokers.
   * A topic the cluster does not have is forgotten; callers see it as missing.
   */
  async refreshMetadata(topics: readonly string[] = [...this.topics.keys()]): Promise<MetadataResponse> {
    const conn = this.brokers.size ? await this.anyConnection() : await this.bootstrapConnection();
    const res = await conn.request(ApiKey.Metadata, {
      topics: topics.map((name) => ({ name })),
      allowAutoTopicCreation: false,
    });
    for (const b of res.brokers) this.brokers.set(b.nodeId, { host: b.host, port: b.port });
    this.clusterId = res.clusterId;
    this.controllerId = res.controllerId;
    for (const t of res.topics) {
      if (t.errorCode === UNKNOWN_TOPIC) {
        this.topics.delete(t.name);
        continue;
      }
      if (t.errorCode !== 0 && t.errorCode !== LEADER_NOT_AVAILABLE)
        throw kafkaError(t.errorCode, `reading the metadata of Kafka topic ${t.name}`);
      this.topics.set(
        t.name,
        t.partitions
          .map((p) => ({
            partition: p.partitionIndex,
            leader: p.errorCode === LEADER_NOT_AVAILABLE ? -1 : p.leaderId,
            replicas: p.replicaNodes,
            isr: p.isrNodes,
          }))
          .sort((a, b) => a.partition - b.partition),
      );
    }
    return res;
  }

  /** The partitions of `topic` as last read, or undefined when it was not (or does not exist). */
  partitions(topic: string): PartitionInfo[] | undefined {
    return this.topics.get(topic);
  }

  /**
   * The partitions of each of `topics`, reading the metadata of those not known yet, and waiting
   * (up to `waitMs`) for a topic just created to have leaders. ObjectError for a topic that does
   * not exist; with `created`, a topic missing from the metadata is waited for too (a broker
   * answers CreateTopics before every broker's metadata has the topic).
   */
  async describeTopics(
    topics: readonly string[],
    waitMs = 10_000,
    created = false,
  ): Promise<Map<string, PartitionInfo[]>> {
    const missing = topics.filter((t) => !this.topics.has(t));
    if (missing.length) {
      await retry(
        async () => {
          await this.refreshMetadata(missing);
          const gone = missing.find((t) => !this.topics.has(t));
          if (gone && created)
            throw new TransientError(`Kafka topic ${gone} was created but is not in the metadata yet`);
          if (gone) throw missingTopic(gone);
          const leaderless = missing.find((t) => this.topics.get(t)!.some((p) => p.leader < 0));
          if (leaderless)
            throw new ConnectionError(`Kafka topic ${leaderless} has partitions without a leader`);
        },
        { deadlineMs: waitMs, initialDelayMs: 50, maxDelayMs: 1000 },
      ).catch((err) => {
        throw err instanceof RetryDeadlineError ? err.cause : err;
      });
    }
    return new Map(topics.map((t) => [t, this.topics.get(t)!]));
  }

  /** The leader of topic/partition as last read, or -1. */
  leader(topic: string, partition: number): number {
    return this.topics.get(topic)?.find((p) => p.partition === partition)?.leader ?? -1;
  }

  /** The coordinator of consumer group `group` (FindCoordinator), cached until `forgetCoordinator`. */
  async coordinator(group: string): Promise<number> {
    const known = this.coordinators.get(group);
    if (known !== undefined && this.brokers.has(known)) return known;
    const conn = await this.anyConnection();
    const res = await conn.request(ApiKey.FindCoordinator, { key: group, keyType: 0 });
    if (res.errorCode !== 0)
      throw kafkaError(res.errorCode, `finding the coordinator of consumer group ${group}`, res.errorMessage);
    this.brokers.set(res.nodeId, { host: res.host, port: res.port });
    this.coordinators.set(group, res.nodeId);
    return res.nodeId;
  }

  forgetCoordinator(group: string): void {
    this.coordinators.delete(group);
  }

  /** Closes every connection; requests in flight fail with a ConnectionError. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections.values(), ...(this.bootstrap ? [this.bootstrap] : [])];
    this.connections.clear();
    this.bootstrap = null;
    await Promise.all(
      all.map((p) =>
        p.then(
          (c) => c.close(),
          () => undefined,
        ),
      ),
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
