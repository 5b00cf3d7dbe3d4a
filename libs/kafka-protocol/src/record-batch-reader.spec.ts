import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { crc32c, DataError, lz4FrameCompress } from '@pgferry/core';
import { PartitionRecords, planBatch, writeRecordBatch } from './record-batch-writer';
import {
  forEachRecord,
  forEachRecordRange,
  recordHeader,
  recordHeaders,
  scanBatches,
  visibleBatches,
  type BatchView,
  type RecordView,
} from './record-batch-reader';

const where = 'Kafka topic t partition 2';

/** A batch of `values` as the capture writes it, with the offsets a broker would give it. */
function batch(
  baseOffset: bigint,
  values: Array<Buffer | null>,
  producer = { producerId: 7n, producerEpoch: 0, baseSequence: 0 },
): Buffer {
  const p = new PartitionRecords(2);
  values.forEach((v, i) => p.push(i % 3 ? randomBytes(i % 5) : null, v));
  const { to, bytes } = planBatch(p, 0, 100_000_000);
  const b = writeRecordBatch(p, 0, to, bytes, producer, 1_700_000_000_000);
  b.writeBigInt64BE(baseOffset, 0);
  return b;
}

/** Sets a batch's attributes and its CRC again, as a producer would have written them. */
function withAttributes(b: Buffer, attributes: number): Buffer {
  b.writeInt16BE(attributes, 21);
  b.writeUInt32BE(crc32c(b, 21, b.length), 17);
  return b;
}

/** `b` with its records compressed by `compress` under codec `codec`, as a producer sends it. */
function compressed(b: Buffer, codec: number, compress: (records: Buffer) => Buffer): Buffer {
  const out = Buffer.concat([b.subarray(0, 61), compress(b.subarray(61))]);
  out.writeInt32BE(out.length - 12, 8);
  return withAttributes(out, codec);
}

/** A control batch (abort marker: key version 0, type 0) of `producerId` at `offset`. */
function marker(offset: bigint, producerId: bigint, type = 0): Buffer {
  const key = Buffer.alloc(4);
  key.writeInt16BE(type, 2);
  const p = new PartitionRecords(0);
  p.push(key, Buffer.from([0, 0, 0, 0, 0, 0]));
  const { to, bytes } = planBatch(p, 0, 1000);
  const b = writeRecordBatch(p, 0, to, bytes, { producerId, producerEpoch: 0, baseSequence: -1 }, 0);
  b.writeBigInt64BE(offset, 0);
  return withAttributes(b, 0x30);
}

function read(batches: BatchView[], from = 0n): Array<[number, string | null]> {
  const out: Array<[number, string | null]> = [];
  for (const b of batches) forEachRecord(b, from, where, (o, v) => out.push([o, v?.toString('hex') ?? null]));
  return out;
}

describe('scanBatches and forEachRecord', () => {
  const sizes = [0, 1, 63, 64, 65, 8191, 8192, 20_000];
  const values = Array.from({ length: 60 }, (_, i) => (i % 11 === 10 ? null : randomBytes(sizes[i % 8])));
  const first = batch(100n, values.slice(0, 25));
  const second = batch(125n, values.slice(25));
  const records = Buffer.concat([first, second]);
  const expected = values.map((v, i): [number, string | null] => [100 + i, v?.toString('hex') ?? null]);

  it('reads what record-batch-writer wrote: every offset and value, tombstones as null, in order', () => {
    const batches = scanBatches(records, where);
    expect(batches.map((b) => [b.baseOffset, b.nextOffset])).toEqual([
      [100n, 125n],
      [125n, 160n],
    ]);
    expect(read(batches)).toEqual(expected);
  });

  it('gives the same records as ranges of the response (forEachRecordRange), tombstones as -1', () => {
    const out: Array<[number, string | null]> = [];
    for (const b of scanBatches(records, where))
      forEachRecordRange(b, 0n, where, (o, buf, start, end) => {
        expect(buf).toBe(records);
        out.push([o, start < 0 ? null : buf.toString('hex', start, end)]);
      });
    expect(out).toEqual(expected);
  });

  it('hands out subarrays of the response, not copies', () => {
    const [b] = scanBatches(records, where);
    const buffers: ArrayBufferLike[] = [];
    forEachRecord(b, 0n, where, (_o, v) => v && buffers.push(v.buffer));
    expect(buffers.length).toBeGreaterThan(0);
    expect(buffers.every((x) => x === records.buffer)).toBe(true);
  });

  it('skips the records before the requested offset inside the first batch', () => {
    expect(read(scanBatches(records, where), 110n)).toEqual(expected.slice(10));
  });

  it("leaves out the records at and after a batch view's `until` (a reader bounded at an offset)", () => {
    const [a, b] = scanBatches(records, where);
    expect(read([a, { ...b, until: 130n }], 110n)).toEqual(expected.slice(10, 30));
    expect(read([{ ...a, until: 100n }])).toEqual([]);
  });

  it('leaves out a batch cut short at the end of the response', () => {
    const cut = records.subarray(0, first.length + 100);
    expect(scanBatches(cut, where).map((b) => b.baseOffset)).toEqual([100n]);
    expect(scanBatches(records.subarray(0, 30), where)).toEqual([]);
  });

  it('refuses a batch whose CRC-32C does not match, naming the topic, partition and offset', () => {
    const bad = Buffer.from(second);
    bad[bad.length - 3] ^= 0xff;
    // Before its header is trusted: a corrupt control bit must not drop a data batch.
    expect(() => scanBatches(bad, where)).toThrow(
      new DataError(
        `${where}: record batch at offset 125 fails its CRC-32C check (stored ${bad.readUInt32BE(17)}, computed ${crc32c(bad, 21, bad.length)}); the data is corrupt in Kafka or on the way`,
      ),
    );
  });

  it.each([
    ['lz4', 3, (b: Buffer) => lz4FrameCompress(b)],
    ['gzip', 1, (b: Buffer) => gzipSync(b)],
  ])('reads %s batches: the same records as uncompressed', (_name, codec, compress) => {
    const both = Buffer.concat([compressed(first, codec, compress), compressed(second, codec, compress)]);
    expect(read(scanBatches(both, where))).toEqual(expected);
    expect(read(scanBatches(both, where), 110n)).toEqual(expected.slice(10));
  });

  it.each([
    ['snappy', 2],
    ['zstd', 4],
  ])('refuses %s batches, naming the codec and the fix', (name, codec) => {
    const [b] = scanBatches(
      compressed(first, codec, (x) => x),
      where,
    );
    expect(() => forEachRecord(b, 0n, where, () => undefined)).toThrow(
      new DataError(
        `${where}: record batch at offset 100 is compressed with ${name}, which pgferry does not read (it reads lz4 and gzip): produce this topic with compression.type lz4, gzip or none`,
      ),
    );
  });

  it('names the batch whose lz4 frame is corrupt', () => {
    const [b] = scanBatches(
      compressed(first, 3, (x) => lz4FrameCompress(x).subarray(0, 40)),
      where,
    );
    expect(() => forEachRecord(b, 0n, where, () => undefined)).toThrow(
      /^Kafka topic t partition 2: record batch at offset 100 does not decompress \(lz4\): LZ4 block of \d+ bytes runs past the frame/,
    );
  });

  it('refuses message formats before v2', () => {
    const old = Buffer.from(first);
    old[16] = 1;
    expect(() => scanBatches(old, where)).toThrow(
      /partition 2: record batch at offset 100 has message format v1/,
    );
  });

  it('refuses a record that runs past its batch', () => {
    const bad = Buffer.from(first);
    bad[61] = 0x7e; // the first record's length: 63 bytes, into the records after it
    withAttributes(bad, 0);
    const [b] = scanBatches(bad, where);
    const err = catching(() => forEachRecord(b, 0n, where, () => undefined));
    expect(err).toBeInstanceOf(DataError);
    // Which record breaks depends on the random bytes read where record 1 should start.
    expect(err.message).toMatch(
      /^Kafka topic t partition 2: malformed record batch at offset 100: (record \d+ runs past|varint|varlong).*; the producer that wrote it is broken$/,
    );
  });

  it('refuses headers whose varints run past the record, naming its offset', () => {
    // One header (count 1), its key length varint cut after a continuation byte.
    const view: RecordView = {
      buf: Buffer.from([0x02, 0x80]),
      offset: 42,
      timestampDelta: 0n,
      keyStart: -1,
      keyEnd: -1,
      valueStart: -1,
      valueEnd: -1,
      headersAt: 0,
    };
    for (const read of [() => recordHeader(view, 'pgferry.pos'), () => recordHeaders(view)]) {
      const err = catching(read);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toBe(
        'record at offset 42 has malformed headers (varint runs past the end); it was written by a broken producer',
      );
    }
  });
});

function catching(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('visibleBatches', () => {
  const data = (offset: bigint, producerId: bigint, n = 2) =>
    withAttributes(
      batch(
        offset,
        Array.from({ length: n }, () => randomBytes(3)),
        { producerId, producerEpoch: 0, baseSequence: 0 },
      ),
      0x10,
    );

  it('drops control batches and the batches of aborted transactions up to their abort marker', () => {
    const records = Buffer.concat([
      data(0n, 1n), // aborted
      data(2n, 2n), // committed
      marker(4n, 1n), // abort of producer 1
      marker(5n, 2n, 1), // commit of producer 2
      data(6n, 1n), // a later transaction of producer 1: not aborted
      batch(8n, [randomBytes(2)]), // not transactional
    ]);
    const all = scanBatches(records, where);
    const visible = visibleBatches(all, [{ producerId: 1n, firstOffset: 0n }]);
    expect(visible.map((b) => b.baseOffset)).toEqual([2n, 6n, 8n]);
    expect(visibleBatches(all, []).map((b) => b.baseOffset)).toEqual([0n, 2n, 6n, 8n]);
  });
});
