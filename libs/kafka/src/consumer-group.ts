import { ConnectionError, PgferryError, retry, RetryDeadlineError, sleep } from '@pgferry/core';
import { ApiKey, Reader, Writer } from '@pgferry/kafka-protocol';
import { KafkaCluster } from './kafka-cluster';
import type { KafkaClientConfig } from './kafka-config';
import { classifyKafkaError, KafkaError, kafkaError } from './kafka-errors';

/** A partition of a topic. */
export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface ConsumerGroupOptions {
  group: string;
  topics: readonly string[];
  /** A member that stops heartbeating this long is dropped and its partitions go to the others. */
  sessionTimeoutMs?: number;
  /** How long the coordinator waits for every member to rejoin in a rebalance. */
  rebalanceTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

/** Kafka's consumer protocol (ConsumerProtocolSubscription / Assignment, version 0), so Kafka's tools read the group. */
const PROTOCOL_TYPE = 'consumer';
/** Partitions dealt round robin over the members in member id order (every member computes the same). */
const ASSIGNOR = 'roundrobin';

const REBALANCE_IN_PROGRESS = 27;
const UNKNOWN_MEMBER_ID = 25;
const ILLEGAL_GENERATION = 22;
const MEMBER_ID_REQUIRED = 79;
const COORDINATOR_ERRORS = new Set([14, 15, 16]); // load in progress, not available, not coordinator

/**
 * Membership in a Kafka consumer group by the classic protocol (JoinGroup, SyncGroup,
 * Heartbeat, LeaveGroup), for appliers that share a task's partitions: every partition belongs
 * to one member of the current generation. pgferry keeps its offsets in the destination, so
 * the group only divides the work; `commit` copies the applied offsets to Kafka for monitoring
 * tools.
 *
 * Contract: `join` resolves with this member's partitions of a new generation. While they are
 * its own, `heartbeats` keep it in the group; `rebalance` resolves when the group wants the
 * member to give its partitions up (another member joined or left) — the caller then finishes
 * or drops what it holds of them, and calls `join` again. Two members may briefly both hold a
 * partition while a rebalance runs (the old owner has not noticed yet): the applier's offset
 * fence in the destination keeps them from applying a batch twice.
 */
export class ConsumerGroupMember {
  private readonly cluster: KafkaCluster;
  private memberId = '';
  private generation = -1;
  private beating: Promise<void> | null = null;
  private stopped = false;
  private wantsRebalance: { resolve: () => void; promise: Promise<void> } = deferred();
  private failure: Error | null = null;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  private readonly heartbeatIntervalMs: number;

  constructor(
    config: KafkaClientConfig,
    private readonly options: ConsumerGroupOptions,
  ) {
    this.cluster = new KafkaCluster(config);
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000;
    this.rebalanceTimeoutMs = options.rebalanceTimeoutMs ?? 30_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? Math.min(1000, this.sessionTimeoutMs / 3);
  }

  get id(): string {
    return this.memberId;
  }

  get generationId(): number {
    return this.generation;
  }

  /** An error that stopped the heartbeats for good (not a rebalance), or null. */
  get error(): Error | null {
    return this.failure;
  }

  /** Resolves when the group rebalances (or the member was dropped): give the partitions up and join again. */
  get rebalance(): Promise<void> {
    return this.wantsRebalance.promise;
  }

  /**
   * Joins (or rejoins) the group and returns this member's partitions of the new generation.
   * Retries coordinator moves and lost connections for up to `deadlineMs`.
   */
  async join(deadlineMs = 120_000): Promise<TopicPartition[]> {
    const where = `joining Kafka consumer group ${this.options.group}`;
    this.wantsRebalance = deferred();
    return retry(
      async () => {
        if (this.stopped) throw new PgferryError(`${where}: the member was stopped`);
        try {
          await this.cluster.connect();
          const assignment = await this.joinOnce();
          this.startHeartbeats();
          return assignment;
        } catch (err) {
          const e = classifyKafkaError(err, where);
          if (e instanceof KafkaError && COORDINATOR_ERRORS.has(e.kafkaCode))
            this.cluster.forgetCoordinator(this.options.group);
          throw e;
        }
      },
      { deadlineMs, initialDelayMs: 100, maxDelayMs: 2000 },
    ).catch((err) => {
      throw err instanceof RetryDeadlineError ? err.cause : err;
    });
  }

  private async joinOnce(): Promise<TopicPartition[]> {
    const group = this.options.group;
    const conn = await this.cluster.connection(await this.cluster.coordinator(group));
    const subscription = encodeSubscription(this.options.topics);
    const join = async () =>
      conn.request(
        ApiKey.JoinGroup,
        {
          groupId: group,
          sessionTimeoutMs: this.sessionTimeoutMs,
          rebalanceTimeoutMs: this.rebalanceTimeoutMs,
          memberId: this.memberId,
          groupInstanceId: null,
          protocolType: PROTOCOL_TYPE,
          protocols: [{ name: ASSIGNOR, metadata: subscription }],
        },
        { extraTimeoutMs: this.rebalanceTimeoutMs },
      );
    let res = await join();
    if (res.errorCode === MEMBER_ID_REQUIRED) {
      this.memberId = res.memberId;
      res = await join();
    }
    if (res.errorCode === UNKNOWN_MEMBER_ID) this.memberId = '';
    if (res.errorCode !== 0) throw this.groupError(res.errorCode, 'joining');
    this.memberId = res.memberId;
    this.generation = res.generationId;
    const assignments =
      res.leader === res.memberId
        ? await this.assign(
            res.members.map((m) => ({ id: m.memberId, topics: decodeSubscription(m.metadata) })),
          )
        : [];
    const sync = await conn.request(
      ApiKey.SyncGroup,
      {
        groupId: group,
        generationId: this.generation,
        memberId: this.memberId,
        groupInstanceId: null,
        assignments,
      },
      { extraTimeoutMs: this.rebalanceTimeoutMs },
    );
    if (sync.errorCode !== 0) throw this.groupError(sync.errorCode, 'syncing');
    return decodeAssignment(sync.assignment);
  }

  /** The leader's assignment: every subscribed partition dealt round robin over the members. */
  private async assign(
    members: Array<{ id: string; topics: string[] }>,
  ): Promise<Array<{ memberId: string; assignment: Buffer }>> {
    const topics = [...new Set(members.flatMap((m) => m.topics))].sort();
    const described = await this.cluster.describeTopics(topics);
    const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : 1));
    const owned = new Map<string, TopicPartition[]>(sorted.map((m) => [m.id, []]));
    let next = 0;
    for (const topic of topics)
      for (const p of described.get(topic)!) {
        const takers = sorted.filter((m) => m.topics.includes(topic));
        if (!takers.length) continue;
        owned.get(takers[next++ % takers.length].id)!.push({ topic, partition: p.partition });
      }
    return sorted.map((m) => ({ memberId: m.id, assignment: encodeAssignment(owned.get(m.id)!) }));
  }

  private startHeartbeats(): void {
    const generation = this.generation;
    const beat = async () => {
      while (!this.stopped && this.generation === generation) {
        await sleep(this.heartbeatIntervalMs);
        if (this.stopped || this.generation !== generation) return;
        try {
          const conn = await this.cluster.connection(await this.cluster.coordinator(this.options.group));
          const res = await conn.request(ApiKey.Heartbeat, {
            groupId: this.options.group,
            generationId: generation,
            memberId: this.memberId,
            groupInstanceId: null,
          });
          if (res.errorCode === 0) continue;
          if (
            res.errorCode === REBALANCE_IN_PROGRESS ||
            res.errorCode === ILLEGAL_GENERATION ||
            res.errorCode === UNKNOWN_MEMBER_ID
          ) {
            if (res.errorCode === UNKNOWN_MEMBER_ID) this.memberId = '';
            this.wantsRebalance.resolve();
            return;
          }
          if (COORDINATOR_ERRORS.has(res.errorCode)) this.cluster.forgetCoordinator(this.options.group);
          else throw this.groupError(res.errorCode, 'heartbeating in');
        } catch (err) {
          const e = classifyKafkaError(err, `heartbeating in Kafka consumer group ${this.options.group}`);
          if (e instanceof PgferryError && e.retriable) continue;
          this.failure = e;
          this.wantsRebalance.resolve();
          return;
        }
      }
    };
    this.beating = beat();
  }

  /** Copies applied offsets to Kafka (monitoring only: pgferry resumes from the destination's). Best effort. */
  async commit(offsets: ReadonlyArray<TopicPartition & { nextOffset: bigint }>): Promise<void> {
    if (!offsets.length || this.generation < 0) return;
    const byTopic = new Map<
      string,
      Array<{
        partitionIndex: number;
        committedOffset: bigint;
        committedLeaderEpoch: number;
        committedMetadata: string | null;
      }>
    >();
    for (const o of offsets)
      byTopic.set(o.topic, [
        ...(byTopic.get(o.topic) ?? []),
        {
          partitionIndex: o.partition,
          committedOffset: o.nextOffset,
          committedLeaderEpoch: -1,
          committedMetadata: null,
        },
      ]);
    try {
      const conn = await this.cluster.connection(await this.cluster.coordinator(this.options.group));
      await conn.request(ApiKey.OffsetCommit, {
        groupId: this.options.group,
        generationId: this.generation,
        memberId: this.memberId,
        groupInstanceId: null,
        retentionTimeMs: -1n,
        topics: [...byTopic].map(([name, partitions]) => ({ name, partitions })),
      });
    } catch {
      // Monitoring only: the next commit carries the offsets again.
    }
  }

  /** Leaves the group (its partitions go to the others at once) and closes the connections. Idempotent. */
  async leave(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wantsRebalance.resolve();
    try {
      if (this.memberId) {
        const conn = await this.cluster.connection(await this.cluster.coordinator(this.options.group));
        const v = conn.requireVersion(ApiKey.LeaveGroup);
        await conn.request(
          ApiKey.LeaveGroup,
          {
            groupId: this.options.group,
            memberId: this.memberId,
            members: [{ memberId: this.memberId, groupInstanceId: null }],
          },
          { version: v },
        );
      }
    } catch {
      // The session timeout drops the member anyway.
    }
    await this.beating?.catch(() => undefined);
    await this.cluster.close();
  }

  private groupError(code: number, what: string): PgferryError {
    if (code === REBALANCE_IN_PROGRESS || code === UNKNOWN_MEMBER_ID || code === ILLEGAL_GENERATION)
      return new ConnectionError(
        `${what} Kafka consumer group ${this.options.group}: the group is rebalancing`,
        { code: 'REBALANCE_IN_PROGRESS' },
      );
    if (COORDINATOR_ERRORS.has(code)) this.cluster.forgetCoordinator(this.options.group);
    return kafkaError(code, `${what} Kafka consumer group ${this.options.group}`);
  }
}

function deferred(): { resolve: () => void; promise: Promise<void> } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { resolve, promise };
}

/** ConsumerProtocolSubscription v0: version, topics, user data. */
export function encodeSubscription(topics: readonly string[]): Buffer {
  const w = new Writer();
  w.int16(0).int32(topics.length);
  for (const t of topics) w.string(t);
  w.nbytes(null);
  return Buffer.from(w.finish());
}

export function decodeSubscription(buf: Buffer): string[] {
  const r = new Reader(buf);
  r.int16();
  const n = r.int32();
  return Array.from({ length: Math.max(0, n) }, () => r.string());
}

/** ConsumerProtocolAssignment v0: version, [topic, [partition]], user data. */
export function encodeAssignment(parts: readonly TopicPartition[]): Buffer {
  const byTopic = new Map<string, number[]>();
  for (const p of parts) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition]);
  const w = new Writer();
  w.int16(0).int32(byTopic.size);
  for (const [topic, ps] of byTopic) {
    w.string(topic).int32(ps.length);
    for (const p of ps) w.int32(p);
  }
  w.nbytes(null);
  return Buffer.from(w.finish());
}

export function decodeAssignment(buf: Buffer): TopicPartition[] {
  if (!buf.length) return [];
  const r = new Reader(buf);
  r.int16();
  const out: TopicPartition[] = [];
  for (let t = r.int32(); t > 0; t--) {
    const topic = r.string();
    for (let p = r.int32(); p > 0; p--) out.push({ topic, partition: r.int32() });
  }
  return out;
}
