import { randomBytes } from 'node:crypto';
import { API_SPECS, ApiKey } from './messages';
import { decodeRecords, readBatchHeader, splitAndValidate } from './record-batch';
import { readStruct, writeStruct } from './schema-codec';
import { Reader, Writer } from './buffer-io';
import { decodeProduceResponse, encodeProduceFrame, encodeProduceRequest } from './produce';
import {
  BATCH_HEADER_BYTES,
  PartitionRecords,
  planBatch,
  writeRecordBatch,
  writeRecordBatchInto,
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

describe('produce request and response', () => {
  const spec = API_SPECS.get(ApiKey.Produce)!;

  it.each([3, 5, 7, 8])('v%d request decodes with the broker codec', (version) => {
    const p = records(10, () => 20);
    const plan = planBatch(p, 0, 1_000_000);
    const batch = writeRecordBatch(p, 0, plan.to, plan.bytes, producer, 5);
    const bytes = encodeProduceRequest(-1, 30_000, 'pgferry.public.tëst', [
      { partition: 2, batch },
      { partition: 0, batch },
    ]);
    const r = new Reader(bytes);
    const req = readStruct<Record<string, unknown>>(r, spec.request, version);
    expect(r.remaining()).toBe(0);
    expect(req).toEqual({
      transactionalId: null,
      acks: -1,
      timeoutMs: 30_000,
      topicData: [
        {
          name: 'pgferry.public.tëst',
          partitionData: [
            { index: 2, records: batch },
            { index: 0, records: batch },
          ],
        },
      ],
    });
  });

  it.each([null, 'pgferry-capture', 'cliënt'])(
    'a whole frame (client id %s) is the size, the request header and the request, batches written in place',
    (clientId) => {
      const p = records(30, (i) => i * 3);
      const a = planBatch(p, 0, 400);
      const b = planBatch(p, a.to, 1_000_000);
      const sources = [
        { partition: 2, from: 0, ...a },
        { partition: 0, from: a.to, ...b },
      ].map(({ partition, from, to, bytes }) => ({
        partition,
        bytes,
        writeInto: (dst: Buffer, pos: number) =>
          writeRecordBatchInto(p, from, to, bytes, producer, 5, dst, pos),
      }));
      const frame = encodeProduceFrame(7, 123456, clientId, -1, 30_000, 'pgferry.public.tëst', sources);
      const r = new Reader(frame);
      expect(r.int32()).toBe(frame.length - 4);
      expect([r.int16(), r.int16(), r.int32(), r.nstring()]).toEqual([ApiKey.Produce, 7, 123456, clientId]);
      const body = frame.subarray(r.pos);
      const expected = encodeProduceRequest(-1, 30_000, 'pgferry.public.tëst', [
        { partition: 2, batch: writeRecordBatch(p, 0, a.to, a.bytes, producer, 5) },
        { partition: 0, batch: writeRecordBatch(p, a.to, b.to, b.bytes, producer, 5) },
      ]);
      expect(body.equals(expected)).toBe(true);
    },
  );

  it.each([3, 4, 5, 7, 8])('v%d response from the broker codec decodes per partition', (version) => {
    const w = new Writer();
    writeStruct(
      w,
      spec.response,
      {
        responses: [
          {
            name: 't',
            partitionResponses: [
              {
                index: 0,
                errorCode: 0,
                baseOffset: 12n,
                logAppendTimeMs: -1n,
                logStartOffset: 0n,
                recordErrors: [],
              },
              {
                index: 1,
                errorCode: 6,
                baseOffset: -1n,
                logAppendTimeMs: -1n,
                logStartOffset: 0n,
                recordErrors: [{ batchIndex: 3, batchIndexErrorMessage: 'bad' }],
                errorMessage: 'not the leader',
              },
            ],
          },
        ],
        throttleTimeMs: 0,
      },
      version,
    );
    const out = decodeProduceResponse(w.finish(), version);
    expect(out.get('t')).toEqual([
      { partition: 0, errorCode: 0, baseOffset: 12n, errorMessage: null },
      {
        partition: 1,
        errorCode: 6,
        baseOffset: -1n,
        errorMessage: version >= 8 ? 'not the leader; record 3: bad' : null,
      },
    ]);
  });
});
