import {
  ConsumerGroupMember,
  KafkaPartitionFetcher,
  type KafkaClientConfig,
  type PartitionData,
  type PartitionFetcherOptions,
  type TopicPartition,
} from '@pgferry/kafka';
import { FailureLatch } from './applier';

/** What an applier does with what the loop fetches. */
export interface RoundHandler {
  /**
   * The next offsets the destination holds for `partitions` (0 for none yet): where fetching
   * starts after `start` and after every new assignment.
   */
  offsets(partitions: readonly TopicPartition[]): Promise<Map<string, bigint>>;
  /**
   * One round's data, each partition's batches from where the loop fetched (records below the
   * stored offset may still be in the first batch: the handler skips them). Resolves when the
   * loop may fetch again (the handler has room); applying may go on after it resolves.
   */
  take(round: PartitionData[]): Promise<void>;
  /** Resolves once every batch taken so far is committed or failed (before a new assignment, and on stop). */
  drain(): Promise<void>;
}

/** The fetcher the loop drives (KafkaPartitionFetcher; a fake in unit tests). */
export type LoopFetcher = Pick<
  KafkaPartitionFetcher,
  'describe' | 'assign' | 'fetch' | 'pause' | 'resume' | 'close' | 'clusterId'
>;

/** The consumer group membership the loop uses (ConsumerGroupMember; a fake in unit tests). */
export type LoopMember = Pick<ConsumerGroupMember, 'join' | 'rebalance' | 'error' | 'commit' | 'leave'>;

export interface ConsumerLoopDeps {
  fetcher?: LoopFetcher;
  member?: LoopMember;
}

export interface ConsumerLoopOptions {
  kafka: KafkaClientConfig;
  group: string;
  topics: readonly string[];
  /**
   * exclusive: this applier reads every partition of `topics` (the caller makes sure it is the
   * only one, see SnapshotApplier's advisory lock). group: the partitions are shared by the
   * members of Kafka consumer group `group` (appliers scaled out), rebalanced as they come and go.
   */
  membership: 'exclusive' | 'group';
  fetch: PartitionFetcherOptions;
  /** Consumer group session timeout (group membership), default 10 s. */
  sessionTimeoutMs?: number;
  /**
   * Where reading ends, per "topic:partition" (exclusive): records at or after it are never
   * handed to the handler, and a partition that reached it is fetched no more (replay up to a
   * point). Partitions not listed are read without end.
   */
  until?: ReadonlyMap<string, bigint>;
}

/**
 * The one consumer loop of the appliers: fetches the partitions this applier owns, round after
 * round, one round ahead of the handler, from the offsets the destination holds, and hands each
 * round to the handler. With group membership, a rebalance stops fetching, waits for the
 * handler to drain, rejoins, reads the offsets of the new assignment and goes on; Kafka's
 * committed offsets follow the destination's (`committed`), for monitoring tools only.
 */
export class ConsumerLoop {
  private readonly latch = new FailureLatch();
  private readonly fetcher: LoopFetcher;
  private member: LoopMember | null = null;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private owned = new Set<string>();
  /** Partitions that reached their `until` bound. */
  private readonly ended = new Set<string>();
  private readonly toCommit = new Map<string, bigint>();
  private lastCommit = 0;

  constructor(
    private readonly opts: ConsumerLoopOptions,
    private readonly handler: RoundHandler,
    private readonly deps: ConsumerLoopDeps = {},
  ) {
    this.fetcher = deps.fetcher ?? new KafkaPartitionFetcher(opts.kafka, opts.fetch);
  }

  get error(): Error | null {
    return this.latch.error ?? this.member?.error ?? null;
  }

  /** The partitions of the current assignment, as "topic:partition". */
  get assigned(): ReadonlySet<string> {
    return this.owned;
  }

  /** The cluster id of the Kafka the loop reads (once started). */
  get clusterId(): string | null {
    return this.fetcher.clusterId;
  }

  async start(): Promise<void> {
    this.running = true;
    if (this.opts.membership === 'group')
      this.member =
        this.deps.member ??
        new ConsumerGroupMember(this.opts.kafka, {
          group: this.opts.group,
          topics: this.opts.topics,
          sessionTimeoutMs: this.opts.sessionTimeoutMs,
        });
    await this.assign();
    this.loop = this.run().catch((err) => this.latch.fail(err));
  }

  /** Stops fetching a partition until `resume` (the handler holds enough of it). */
  pause(topic: string, partition: number): void {
    this.fetcher.pause(topic, partition);
  }

  resume(topic: string, partition: number): void {
    if (!this.ended.has(`${topic}:${partition}`)) this.fetcher.resume(topic, partition);
  }

  /** Notes what the destination committed; Kafka's group offsets follow about once a second. */
  committed(key: string, nextOffset: bigint): void {
    if (!this.member) return;
    this.toCommit.set(key, nextOffset);
    if (Date.now() - this.lastCommit < 1000) return;
    this.lastCommit = Date.now();
    const offsets = [...this.toCommit].map(([k, nextOffset]) => {
      const at = k.lastIndexOf(':');
      return { topic: k.slice(0, at), partition: Number(k.slice(at + 1)), nextOffset };
    });
    this.toCommit.clear();
    void this.member.commit(offsets);
  }

  /** Joins (group) or takes every partition (exclusive), then fetches from the destination's offsets. */
  private async assign(): Promise<void> {
    let partitions: TopicPartition[];
    if (this.member) partitions = await this.member.join();
    else {
      const described = await this.fetcher.describe(this.opts.topics);
      partitions = [...described].flatMap(([topic, ps]) =>
        ps.map((p) => ({ topic, partition: p.partition })),
      );
    }
    const offsets = await this.handler.offsets(partitions);
    this.owned = new Set(partitions.map((p) => `${p.topic}:${p.partition}`));
    this.fetcher.assign(
      partitions.map((p) => ({ ...p, offset: offsets.get(`${p.topic}:${p.partition}`) ?? 0n })),
    );
    for (const p of partitions) {
      const end = this.opts.until?.get(`${p.topic}:${p.partition}`);
      if (end !== undefined && (offsets.get(`${p.topic}:${p.partition}`) ?? 0n) >= end) this.endAt(p);
    }
  }

  private endAt(p: TopicPartition): void {
    this.ended.add(`${p.topic}:${p.partition}`);
    this.fetcher.pause(p.topic, p.partition);
  }

  /**
   * A round's data cut at the partitions' `until` bounds: batches from the bound on dropped,
   * the one across it cut there (BatchView.until), partitions left with nothing dropped.
   */
  private bounded(round: PartitionData[]): PartitionData[] {
    const until = this.opts.until;
    if (!until) return round;
    const out: PartitionData[] = [];
    for (const d of round) {
      const end = until.get(`${d.topic}:${d.partition}`);
      if (end === undefined) {
        out.push(d);
        continue;
      }
      if (d.nextOffset >= end) this.endAt(d);
      const batches = d.batches
        .filter((b) => b.baseOffset < end)
        .map((b) => (b.nextOffset > end ? { ...b, until: end } : b));
      if (batches.length && d.from < end)
        out.push({ ...d, batches, nextOffset: d.nextOffset > end ? end : d.nextOffset });
    }
    return out;
  }

  private async run(): Promise<void> {
    let rebalance = this.member ? watch(this.member.rebalance) : null;
    let next: Promise<PartitionData[]> = this.fetcher.fetch();
    while (this.running && !this.error) {
      const round = await next;
      if (!this.running || this.error) break;
      if (rebalance?.done) {
        // Give the partitions up cleanly: what is under way commits, then the group decides.
        await next.catch(() => undefined);
        await this.handler.drain();
        if (!this.running || this.error) break;
        await this.assign();
        rebalance = watch(this.member!.rebalance);
        next = this.fetcher.fetch();
        continue;
      }
      next = this.fetcher.fetch();
      // Settled later by the await above; this only keeps a failure from being unhandled meanwhile.
      next.catch(() => undefined);
      const mine = this.bounded(round.filter((d) => this.owned.has(`${d.topic}:${d.partition}`)));
      if (mine.length) await this.handler.take(mine);
    }
    // A round fetched ahead is dropped (its records are fetched again from the stored offsets).
    await next.catch(() => undefined);
  }

  /**
   * Stops fetching, lets the handler finish what it took, leaves the group and closes the
   * connections. Idempotent.
   */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.handler.drain().catch(() => undefined);
    await this.member?.leave().catch(() => undefined);
    await this.fetcher.close().catch(() => undefined);
  }
}

/** A promise with a flag set once it settled. */
function watch(p: Promise<void>): { done: boolean } {
  const w = { done: false };
  void p.then(() => (w.done = true));
  return w;
}
