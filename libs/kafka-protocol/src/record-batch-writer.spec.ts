import { randomBytes } from 'node:crypto';
import { BATCH_HEADER_BYTES, readBatchHeader, splitAndValidate } from './record-batch';
import { decodeRecords } from './record-batch-reader';
import {
  buildBatch,
  compressBatch,
  encodeHeaders,
  PartitionRecords,
  planBatch,
  writeRecordBatch,
} from './record-batch-writer';

const hex = (bs: Array<Buffer | null>) => bs.map((b) => b?.toString('hex') ?? null);
const producer = { producerId: 4242n, producerEpoch: 3, baseSequence: 17 };

function records(n: number, size: (i: number) => number): PartitionRecords {
  const p = new PartitionRecords(2);
  for (let i = 0; i < n; i++)
    p.push(i % 5 === 4 ? null : randomBytes(i % 9), i % 7 === 6 ? null : randomBytes(size(i)));
  return p;
}

describe('writeRecordBatch', () => {
  it('writes a batch the broker validates and decodes to the same keys and values, in order', () => {
    // Sizes around the varint boundaries (63/64 and 8191/8192 bytes zig-zag to 1, 2 and 3 bytes).
    const sizes = [0, 1, 63, 64, 65, 8191, 8192, 20000];
    const p = records(200, (i) => sizes[i % sizes.length]);
    const { to, bytes } = planBatch(p, 0, 10_000_000);
    expect(to).toBe(200);
    const batch = writeRecordBatch(p, 0, to, bytes, producer, 1_700_000_000_123);
    expect(batch.length).toBe(bytes);
    const [h] = splitAndValidate(batch);
    expect(h).toMatchObject({
      magic: 2,
      compression: 0,
      isTransactional: false,
      isControl: false,
      recordCount: 200,
      lastOffsetDelta: 199,
      producerId: 4242n,
      producerEpoch: 3,
      baseSequence: 17,
      firstTimestamp: 1_700_000_000_123n,
      maxTimestamp: 1_700_000_000_123n,
    });
    expect(readBatchHeader(batch).size).toBe(batch.length);
    const decoded = decodeRecords(batch);
    expect(decoded.map((r) => r.offset)).toEqual(Array.from({ length: 200 }, (_, i) => BigInt(i)));
    expect(hex(decoded.map((r) => r.key))).toEqual(hex(p.keys));
    expect(hex(decoded.map((r) => r.value))).toEqual(hex(p.values));
    expect(decoded.every((r) => r.headers.length === 0 && r.timestamp === 1_700_000_000_123n)).toBe(true);
  });

  it('splits a partition into batches of at most maxBytes, each valid, covering every record once', () => {
    const p = records(1000, (i) => 50 + (i % 300));
    const seen: Array<Buffer | null> = [];
    for (let from = 0; from < p.length;) {
      const { to, bytes } = planBatch(p, from, 16_384);
      expect(bytes).toBeLessThanOrEqual(16_384);
      expect(to).toBeGreaterThan(from);
      const batch = writeRecordBatch(p, from, to, bytes, { ...producer, baseSequence: from }, 1);
      const [h] = splitAndValidate(batch);
      expect(h.baseSequence).toBe(from);
      seen.push(...decodeRecords(batch).map((r) => r.value));
      from = to;
    }
    expect(hex(seen)).toEqual(hex(p.values));
  });

  it('writes records given as ranges of shared buffers as it writes the same records given as buffers', () => {
    const slab = randomBytes(4000);
    const byRange = new PartitionRecords(1);
    const byBuffer = new PartitionRecords(1);
    for (let i = 0, pos = 0; i < 40; i++) {
      const v = (i * 37) % 90;
      const k = i % 3 === 0 ? 0 : 4 + (i % 5);
      byRange.pushRanges(slab, i % 3 !== 0, pos + v, pos + v + k, pos, pos + v);
      byBuffer.push(i % 3 === 0 ? null : slab.subarray(pos + v, pos + v + k), slab.subarray(pos, pos + v));
      pos += v + k;
    }
    const a = planBatch(byRange, 0, 1_000_000);
    expect(a).toEqual(planBatch(byBuffer, 0, 1_000_000));
    const batch = writeRecordBatch(byRange, 0, a.to, a.bytes, producer, 5);
    expect(batch.equals(writeRecordBatch(byBuffer, 0, a.to, a.bytes, producer, 5))).toBe(true);
    expect(hex(decodeRecords(batch).map((r) => r.key))).toEqual(hex(byBuffer.keys));
    expect(hex(byRange.values)).toEqual(hex(byBuffer.values));
  });

  it('puts a record larger than maxBytes in a batch of its own', () => {
    const p = new PartitionRecords(0);
    p.push(null, Buffer.alloc(5000));
    p.push(null, Buffer.alloc(10));
    const first = planBatch(p, 0, 1000);
    expect(first.to).toBe(1);
    expect(first.bytes).toBeGreaterThan(5000 + BATCH_HEADER_BYTES);
    expect(planBatch(p, 1, 1000).to).toBe(2);
  });
});

describe('headers, timestamps and compression', () => {
  it('writes each record with its headers, as the broker reads them back', () => {
    const p = new PartitionRecords(0);
    const pos = Buffer.from('000000010000000200000003', 'hex');
    p.push(Buffer.from('k1'), Buffer.from('v1'), encodeHeaders([{ key: 'pgferry.pos', value: pos }]));
    p.push(Buffer.from('k2'), null);
    p.push(
      null,
      Buffer.from('v3'),
      encodeHeaders([
        { key: 'a', value: null },
        { key: 'bé', value: Buffer.from('x') },
      ]),
    );
    const { to, bytes } = planBatch(p, 0, 1_000_000);
    const batch = writeRecordBatch(p, 0, to, bytes, producer, 9);
    expect(splitAndValidate(batch)).toHaveLength(1);
    expect(decodeRecords(batch).map((r) => r.headers)).toEqual([
      [{ key: 'pgferry.pos', value: pos }],
      [],
      [
        { key: 'a', value: null },
        { key: 'bé', value: Buffer.from('x') },
      ],
    ]);
  });

  it('keeps offsets with gaps and per-record timestamps (buildBatch, as compaction writes)', () => {
    const b = buildBatch(
      [
        { offset: 103n, timestamp: 1000n, value: Buffer.from('a') },
        { offset: 107n, timestamp: 999n, value: Buffer.from('b') },
        { offset: 108n, timestamp: 2000n, value: null },
      ],
      { baseOffset: 100n, lastOffsetDelta: 9 },
    );
    expect(readBatchHeader(b)).toMatchObject({
      baseOffset: 100n,
      lastOffsetDelta: 9,
      firstTimestamp: 1000n,
      maxTimestamp: 2000n,
    });
    expect(decodeRecords(b).map((r) => [r.offset, r.timestamp])).toEqual([
      [103n, 1000n],
      [107n, 999n],
      [108n, 2000n],
    ]);
  });

  it.each(['gzip', 'lz4'] as const)('compresses a batch (%s) to the same records, CRC valid', (codec) => {
    const p = records(300, (i) => i % 50);
    const { to, bytes } = planBatch(p, 0, 10_000_000);
    const plain = writeRecordBatch(p, 0, to, bytes, producer, 7);
    const packed = compressBatch(plain, codec);
    const [h] = splitAndValidate(packed);
    expect(h).toMatchObject({ compression: codec === 'gzip' ? 1 : 3, recordCount: 300, baseSequence: 17 });
    expect(hex(decodeRecords(packed).map((r) => r.value))).toEqual(hex(p.values));
  });
});
