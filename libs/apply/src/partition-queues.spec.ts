import { STREAM_POSITION_HEADER, streamPosition } from '@pgferry/avro';
import type { PartitionData } from '@pgferry/kafka';
import { buildBatch, scanBatches } from '@pgferry/kafka-protocol';
import { head, lsnBytes, lsnOf, PartitionQueues } from './partition-queues';
import { recordViews } from './undecodable-records';

const valueOf = (r: Parameters<typeof recordViews>[0]) => recordViews(r).value;

/** A fetched round of one partition: records at `from` on, each with its stream position (lsn, seq). */
function round(
  topic: string,
  partition: number,
  from: bigint,
  records: Array<{ lsn: bigint; seq: number; value?: Buffer | null; noPos?: boolean }>,
  compression: 'none' | 'lz4' | 'gzip' = 'none',
): PartitionData {
  const buf = buildBatch(
    records.map((r, i) => ({
      offset: from + BigInt(i),
      key: Buffer.from(`k${r.seq}`),
      value: r.value === undefined ? Buffer.from(`v${r.lsn}/${r.seq}`) : r.value,
      headers: r.noPos ? [] : [{ key: STREAM_POSITION_HEADER, value: streamPosition(r.lsn, r.seq) }],
    })),
    { compression },
  );
  return {
    topic,
    partition,
    from,
    batches: scanBatches(buf, `${topic}/${partition}`),
    nextOffset: from + BigInt(records.length),
    highWatermark: from + BigInt(records.length),
  };
}

function queues(maxQueuedBytes = 1 << 20, stored: Record<string, bigint> = {}) {
  const flow: string[] = [];
  const q = new PartitionQueues({
    startOffset: (k) => stored[k] ?? 0n,
    maxQueuedBytes,
    pause: (t, p) => flow.push(`pause ${t}:${p}`),
    resume: (t, p) => flow.push(`resume ${t}:${p}`),
  });
  return { q, flow };
}

describe('PartitionQueues', () => {
  it('finds the record a transaction needs next at the head of whichever partition holds it', () => {
    const { q } = queues();
    q.add(
      round('t', 0, 0n, [
        { lsn: 100n, seq: 1 },
        { lsn: 100n, seq: 3 },
      ]),
    );
    q.add(round('t', 1, 0n, [{ lsn: 100n, seq: 2 }]));
    expect(q.headAt(lsnBytes(100n), 1)).toBe(q.queue('t', 0));
    expect(q.headAt(lsnBytes(100n), 2)).toBe(q.queue('t', 1));
    // Seq 3 is not at a head until seq 1 is taken.
    expect(q.headAt(lsnBytes(100n), 3)).toBeUndefined();
    const first = q.take(q.headAt(lsnBytes(100n), 1)!);
    expect([first.offset, lsnOf(first), first.seq, valueOf(first)!.toString()]).toEqual([
      0,
      100n,
      1,
      'v100/1',
    ]);
    expect(q.headAt(lsnBytes(100n), 1)).toBeUndefined();
    expect(q.headAt(lsnBytes(100n), 3)).toBe(q.queue('t', 0));
    q.take(q.headAt(lsnBytes(100n), 2)!);
    expect(head(q.queue('t', 1))).toBeUndefined();
  });

  it('keeps what was taken for the offsets stored with the commit, the transaction topic with its END position', () => {
    const { q } = queues(1 << 20, { 't:0': 5n });
    q.add(
      round('t', 0, 5n, [
        { lsn: 7n, seq: 2 },
        { lsn: 9n, seq: 2 },
      ]),
    );
    q.add(round('tx', 0, 0n, [{ lsn: 7n, seq: 1 }]));
    expect(q.taken).toBe(false);
    q.take(q.queue('t', 0));
    q.take(q.queue('tx', 0));
    expect(q.taken).toBe(true);
    const end = streamPosition(7n, 3);
    expect(q.takenMarks('tx', end)).toEqual([
      { topic: 't', partition: 0, nextOffset: 6n, streamPos: streamPosition(7n, 2) },
      { topic: 'tx', partition: 0, nextOffset: 1n, streamPos: end },
    ]);
    const seen: string[] = [];
    q.stored((x) => seen.push(`${x.topic}:${x.partition}`));
    expect(seen).toEqual(['t:0', 'tx:0']);
    expect(q.taken).toBe(false);
    expect(q.takenMarks('tx', null)).toEqual([]);
  });

  it('skips records fetched again, and refuses a gap or a record without a stream position', () => {
    const { q } = queues();
    q.add(
      round('t', 0, 0n, [
        { lsn: 1n, seq: 1 },
        { lsn: 1n, seq: 2 },
      ]),
    );
    q.add(
      round('t', 0, 1n, [
        { lsn: 1n, seq: 2 },
        { lsn: 1n, seq: 3 },
      ]),
    );
    expect(q.queue('t', 0).items.map((i) => i.seq)).toEqual([1, 2, 3]);
    expect(() => q.add(round('t', 0, 5n, [{ lsn: 2n, seq: 1 }]))).toThrow(
      't/0: the next record to apply is at offset 3 but Kafka returned 5; records in between were deleted (retention) before they were applied: start the task again from the full load',
    );
    expect(() => q.add(round('u', 0, 0n, [{ lsn: 2n, seq: 1, noPos: true }]))).toThrow(
      "u/0@0 has no pgferry.pos header: options.consistency transactional applies only records written by pgferry's stream capture",
    );
    expect(q.queue('u', 0).items).toEqual([]);
  });

  it('pauses a partition holding more than maxQueuedBytes and resumes it below half', () => {
    const value = Buffer.alloc(100);
    const { q, flow } = queues(250);
    q.add(
      round(
        't',
        3,
        0n,
        [1, 2, 3].map((seq) => ({ lsn: 1n, seq, value })),
      ),
    );
    expect(flow).toEqual(['pause t:3']);
    q.take(q.queue('t', 3));
    expect(flow).toEqual(['pause t:3']);
    q.take(q.queue('t', 3));
    expect(flow).toEqual(['pause t:3', 'resume t:3']);
  });

  it('tells apart heads of the same number in different transactions, and follows a transaction over many partitions', () => {
    const { q } = queues();
    // Heads (100, 2) and (200, 2) share a number: each is found by its commit LSN.
    q.add(round('t', 0, 0n, [{ lsn: 100n, seq: 2 }]));
    q.add(round('t', 1, 0n, [{ lsn: 200n, seq: 2 }]));
    q.add(round('t', 2, 0n, [{ lsn: 300n, seq: 2 }]));
    expect(q.headAt(lsnBytes(200n), 2)).toBe(q.queue('t', 1));
    expect(q.headAt(lsnBytes(100n), 2)).toBe(q.queue('t', 0));
    expect(q.headAt(lsnBytes(300n), 2)).toBe(q.queue('t', 2));
    q.take(q.queue('t', 1));
    expect(q.headAt(lsnBytes(200n), 2)).toBeUndefined();
    expect(q.headAt(lsnBytes(100n), 2)).toBe(q.queue('t', 0));
    expect(q.headAt(lsnBytes(300n), 2)).toBe(q.queue('t', 2));
    q.take(q.queue('t', 2));
    expect(q.headAt(lsnBytes(100n), 2)).toBe(q.queue('t', 0));
    q.take(q.queue('t', 0));
    // Transaction 400's records 1..240, dealt over eight partitions the way keys hash, each
    // partition's records in two rounds.
    const lsn = 400n;
    const parts = Array.from({ length: 8 }, () => [] as number[]);
    for (let seq = 1; seq <= 240; seq++) parts[(seq * 7919) % 8].push(seq);
    for (const [p, seqs] of parts.entries()) {
      const half = Math.ceil(seqs.length / 2);
      const rows = seqs.map((seq) => ({ lsn, seq }));
      q.add(round('u', p, 0n, rows.slice(0, half)));
      q.add(round('u', p, BigInt(half), rows.slice(half), 'lz4'));
    }
    const taken: string[] = [];
    for (let seq = 1; seq <= 240; seq++) {
      const at = q.headAt(lsnBytes(lsn), seq);
      if (!at) throw new Error(`record ${seq} is not at a head`);
      const r = q.take(at);
      taken.push(`${valueOf(r)!.toString()} ${r.buf.toString('utf8', r.keyStart, r.keyEnd)}`);
    }
    expect(taken).toEqual(Array.from({ length: 240 }, (_, i) => `v400/${i + 1} k${i + 1}`));
    expect([...q.values()].filter((x) => head(x))).toEqual([]);
  });

  it('keeps records intact after the fetch response is reused, compressed or not, and queues nothing of a refused round', () => {
    const { q } = queues();
    const plain = round('t', 0, 0n, [{ lsn: 5n, seq: 1 }]);
    const packed = round('t', 1, 0n, [{ lsn: 5n, seq: 2 }], 'gzip');
    q.add(plain);
    q.add(packed);
    for (const b of [...plain.batches, ...packed.batches]) b.buf.fill(0);
    expect(valueOf(q.take(q.headAt(lsnBytes(5n), 1)!))!.toString()).toBe('v5/1');
    expect(valueOf(q.take(q.headAt(lsnBytes(5n), 2)!))!.toString()).toBe('v5/2');
    expect(q.takenMarks('tx', null).map((m) => [m.nextOffset, m.streamPos])).toEqual([
      [1n, streamPosition(5n, 1)],
      [1n, streamPosition(5n, 2)],
    ]);
    // A round whose second batch has no stream position is refused whole.
    const good = round('t', 0, 1n, [{ lsn: 6n, seq: 1 }]);
    const bad = round('t', 0, 2n, [{ lsn: 6n, seq: 2, noPos: true }]);
    expect(() => q.add({ ...good, batches: [...good.batches, ...bad.batches] })).toThrow(
      'no pgferry.pos header',
    );
    expect(head(q.queue('t', 0))).toBeUndefined();
    expect(q.headAt(lsnBytes(6n), 1)).toBeUndefined();
    q.add(good);
    expect(q.headAt(lsnBytes(6n), 1)).toBe(q.queue('t', 0));
  });

  it('ends a wait when records arrive or on signal, and a wait after records arrived at once', async () => {
    const { q } = queues();
    q.add(round('t', 0, 0n, [{ lsn: 1n, seq: 1 }]));
    await q.waitForRecords();
    let done = false;
    const waiting = q.waitForRecords().then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    q.signal();
    await waiting;
    expect(done).toBe(true);
  });
});
