import type { PartitionData, TopicPartition } from '@pgferry/kafka';
import { waitFor } from '@pgferry/testing';
import { ConsumerLoop, type LoopFetcher, type LoopMember, type RoundHandler } from './consumer-loop';

/** A fetcher that hands out scripted rounds, one per fetch, and records what it was told. */
class FakeFetcher implements LoopFetcher {
  clusterId = 'cluster-1';
  assignments: Array<Array<{ topic: string; partition: number; offset: bigint }>> = [];
  rounds: PartitionData[][] = [];
  paused: string[] = [];
  closed = false;
  fetches = 0;
  private wake: (() => void) | null = null;

  constructor(private readonly partitions: Record<string, number>) {}

  async describe(topics: readonly string[]) {
    return new Map(
      topics.map((t) => [t, Array.from({ length: this.partitions[t] }, (_, partition) => ({ partition }))]),
    );
  }
  assign(parts: ReadonlyArray<{ topic: string; partition: number; offset: bigint }>) {
    this.assignments.push([...parts]);
  }
  async fetch(): Promise<PartitionData[]> {
    this.fetches++;
    if (this.rounds.length) return this.rounds.shift()!;
    // Idle: like a long poll, until a round is pushed or a short while passes.
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, 5);
    });
    return this.rounds.shift() ?? [];
  }
  push(round: PartitionData[]) {
    this.rounds.push(round);
    this.wake?.();
  }
  pause(topic: string, partition: number) {
    this.paused.push(`${topic}:${partition}`);
  }
  resume() {}
  async close() {
    this.closed = true;
  }
}

/** A group member whose assignments and rebalances the test decides. */
class FakeMember implements LoopMember {
  error: Error | null = null;
  joins = 0;
  left = false;
  commits: Array<Array<{ topic: string; partition: number; nextOffset: bigint }>> = [];
  private trigger: () => void = () => undefined;
  rebalance: Promise<void> = new Promise((r) => (this.trigger = r));

  constructor(private readonly assignments: TopicPartition[][]) {}

  async join(): Promise<TopicPartition[]> {
    this.rebalance = new Promise((r) => (this.trigger = r));
    return this.assignments[Math.min(this.joins++, this.assignments.length - 1)];
  }
  startRebalance() {
    this.trigger();
  }
  async commit(offsets: ReadonlyArray<TopicPartition & { nextOffset: bigint }>) {
    this.commits.push([...offsets]);
  }
  async leave() {
    this.left = true;
  }
}

const data = (topic: string, partition: number, from: bigint): PartitionData => ({
  topic,
  partition,
  from,
  batches: [],
  nextOffset: from + 1n,
  highWatermark: from + 1n,
});

function handler(stored: Map<string, bigint>) {
  const events: string[] = [];
  let inFlight: Promise<void> = Promise.resolve();
  let release: () => void = () => undefined;
  const h: RoundHandler & { events: string[]; hold(): void; finish(): void } = {
    events,
    async offsets(partitions) {
      events.push(`offsets ${partitions.map((p) => `${p.topic}:${p.partition}`).join(',')}`);
      return stored;
    },
    async take(round) {
      events.push(`take ${round.map((d) => `${d.topic}:${d.partition}@${d.from}`).join(',')}`);
    },
    async drain() {
      events.push('drain');
      await inFlight;
      events.push('drained');
    },
    hold() {
      inFlight = new Promise((r) => (release = r));
    },
    finish() {
      release();
    },
  };
  return h;
}

/** Polls `check` (every 5 ms, for 2 s) until it holds, failing with `reason`. */
const until = (check: () => boolean, reason: string) =>
  waitFor(check, { reason, interval: 5, timeout: 2000 });

const options = (membership: 'exclusive' | 'group') => ({
  kafka: { brokers: ['unused:9092'], clientId: 'unit' },
  group: 'g',
  topics: ['a', 'b'],
  membership,
  fetch: { maxWaitMs: 5, maxBytesPerPartition: 1, maxBytes: 1 },
});

describe('ConsumerLoop, the one consumer loop of the appliers', () => {
  it('until: hands out records before the bound only, cuts the batch across it, and stops fetching there', async () => {
    const fetcher = new FakeFetcher({ a: 2, b: 1 });
    const taken: PartitionData[][] = [];
    const h = handler(new Map([['a:1', 9n]]));
    h.take = async (round) => {
      taken.push(round);
    };
    const bound = new Map([
      ['a:0', 15n],
      ['a:1', 9n],
    ]);
    const loop = new ConsumerLoop({ ...options('exclusive'), until: bound }, h, { fetcher });
    await loop.start();
    // a:1 starts at its bound: paused before its first fetch.
    expect(fetcher.paused).toEqual(['a:1']);
    const batch = (baseOffset: bigint, nextOffset: bigint) => ({
      buf: Buffer.alloc(0),
      start: 0,
      end: 0,
      baseOffset,
      nextOffset,
      producerId: 0n,
      transactional: false,
      control: false,
    });
    fetcher.push([
      { ...data('a', 0, 0n), batches: [batch(0n, 10n), batch(10n, 20n), batch(20n, 30n)], nextOffset: 30n },
      { ...data('b', 0, 0n), batches: [batch(0n, 5n)], nextOffset: 5n },
    ]);
    await until(() => taken.length > 0, 'the handler takes a round');
    await loop.stop();
    const [a0, b0] = taken[0];
    expect(a0.batches.map((b) => [b.baseOffset, b.until])).toEqual([
      [0n, undefined],
      [10n, 15n],
    ]);
    expect(a0.nextOffset).toBe(15n);
    expect(b0.batches).toHaveLength(1);
    expect(fetcher.paused).toEqual(['a:1', 'a:0']);
  });

  it('exclusive: takes every partition, fetching each from the offset the destination holds', async () => {
    const fetcher = new FakeFetcher({ a: 2, b: 1 });
    const h = handler(new Map([['a:1', 40n]]));
    const loop = new ConsumerLoop(options('exclusive'), h, { fetcher });
    await loop.start();
    expect(fetcher.assignments).toEqual([
      [
        { topic: 'a', partition: 0, offset: 0n },
        { topic: 'a', partition: 1, offset: 40n },
        { topic: 'b', partition: 0, offset: 0n },
      ],
    ]);
    fetcher.push([data('a', 1, 40n), data('b', 0, 0n)]);
    await until(() => h.events.some((e) => e.startsWith('take')), 'the handler takes a round');
    await loop.stop();
    expect(h.events).toEqual(['offsets a:0,a:1,b:0', 'take a:1@40,b:0@0', 'drain', 'drained']);
    expect(fetcher.closed).toBe(true);
    expect(loop.assigned).toEqual(new Set(['a:0', 'a:1', 'b:0']));
  });

  it('group: on a rebalance it stops handing out rounds, drains, rejoins and reads the new offsets', async () => {
    const fetcher = new FakeFetcher({ a: 2, b: 1 });
    const member = new FakeMember([
      [
        { topic: 'a', partition: 0 },
        { topic: 'a', partition: 1 },
      ],
      [{ topic: 'b', partition: 0 }],
    ]);
    const h = handler(new Map([['b:0', 7n]]));
    const loop = new ConsumerLoop(options('group'), h, { fetcher, member });
    await loop.start();
    fetcher.push([data('a', 0, 0n)]);
    await until(() => h.events.length === 2, 'two handler events');
    h.hold();
    member.startRebalance();
    // The round fetched meanwhile holds a partition this member is about to give up: not handed out.
    fetcher.push([data('a', 1, 0n)]);
    await until(() => h.events.includes('drain'), 'the handler drains');
    expect(member.joins).toBe(1);
    h.finish();
    await until(() => member.joins === 2 && fetcher.assignments.length === 2, 'a second join and assignment');
    expect(fetcher.assignments[1]).toEqual([{ topic: 'b', partition: 0, offset: 7n }]);
    fetcher.push([data('b', 0, 7n), data('a', 0, 1n)]);
    await until(() => h.events.some((e) => e.startsWith('take b')), 'the handler takes a round of b');
    await loop.stop();
    expect(h.events.filter((e) => e !== 'drain')).toEqual([
      'offsets a:0,a:1',
      'take a:0@0',
      'drained',
      'offsets b:0',
      // a:0 is no longer this member's: dropped from the round.
      'take b:0@7',
      'drained',
    ]);
    expect(member.left).toBe(true);
  });

  it("copies committed offsets to the group about once a second, and reports the member's failure", async () => {
    const fetcher = new FakeFetcher({ a: 1, b: 1 });
    const member = new FakeMember([[{ topic: 'a', partition: 0 }]]);
    const loop = new ConsumerLoop(options('group'), handler(new Map()), { fetcher, member });
    await loop.start();
    loop.committed('a:0', 5n);
    loop.committed('a:0', 9n);
    expect(member.commits).toEqual([[{ topic: 'a', partition: 0, nextOffset: 5n }]]);
    member.error = new Error('coordinator gone for good');
    expect(loop.error?.message).toBe('coordinator gone for good');
    await loop.stop();
  });

  it('passes pause and resume to the fetcher (a handler that holds enough of a partition)', async () => {
    const fetcher = new FakeFetcher({ a: 1, b: 1 });
    const loop = new ConsumerLoop(options('exclusive'), handler(new Map()), { fetcher });
    await loop.start();
    loop.pause('a', 0);
    expect(fetcher.paused).toEqual(['a:0']);
    await loop.stop();
  });
});
