import {
  encodeHeaders,
  splitAndValidate,
  forEachRecord,
  scanBatches,
  PartitionRecords,
  planBatch,
  writeRecordBatch,
  decodeRecords,
} from '@pgferry/kafka-protocol';
import { SlabPool } from '@pgferry/core';
import { rowsOfLines } from '@pgferry/pg';
import { buildSchemas, TableEncoder, column as col } from '@pgferry/avro';
import { FramedRecords, PartitionedBatches } from './framed-batches';
import { keyPartition } from './kafka-partitioner';

function encoder(keyed: boolean): TableEncoder {
  const columns = [col('id', 'int4', { notNull: true, keyPosition: keyed ? 1 : 0 }), col('t', 'text')];
  const schemas = buildSchemas('p', 'public', 't', columns);
  return new TableEncoder(
    columns,
    schemas,
    { key: keyed ? 7 : null, value: 8 },
    {
      name: 'p',
      db: 'd',
      schema: 'public',
      table: 't',
    },
  );
}

const producer = { producerId: 99n, producerEpoch: 1, baseSequence: 5 };

describe('PartitionedBatches', () => {
  // Text sizes around the record varint boundaries (values under 64 bytes, over 8 KiB).
  const sizes = [0, 3, 30, 49, 60, 70, 200, 8100, 8200, 20000];
  const lines = Array.from({ length: 120 }, (_, i) =>
    Buffer.from(`${i}\t${i % 13 === 12 ? '\\N' : 'x'.repeat(sizes[i % sizes.length])}`),
  );

  it.each([
    [true, 1_000_000, false],
    [true, 30_000, false],
    [false, 1_000_000, false],
    [false, 30_000, false],
    [true, 30_000, true],
    [false, 1_000_000, true],
  ])(
    'writes the batches writeRecordBatch writes for the same records and partitions (keyed %s, max %d bytes, headers %s)',
    (keyed, maxBytes, withHeaders) => {
      const enc = encoder(keyed);
      const partitions = 3;
      const list = withHeaders ? [{ key: 'pgferry.run', value: Buffer.from('0123456789abcdef') }] : [];
      const headers = list.length ? encodeHeaders(list) : null;
      const sink = new PartitionedBatches(partitions, maxBytes, 1, new SlabPool(4096), undefined, list);
      enc.encodeRowsFramed(rowsOfLines(lines), 5, false, sink);
      // The reference: encodeReads, the publisher's partition choice, planBatch's cuts.
      const parts = Array.from({ length: partitions }, (_, p) => new PartitionRecords(p));
      let rr = 1;
      for (const row of enc.encodeReads(lines, 5, false)) {
        const p = row.key ? keyPartition(row.key, partitions) : (rr = (rr + 1) % partitions);
        parts[p].push(row.key, row.value, headers);
      }
      const expected = new Map<number, string[]>();
      for (const records of parts)
        for (let from = 0; from < records.length;) {
          const { to, bytes } = planBatch(records, from, maxBytes);
          const list = expected.get(records.partition) ?? [];
          list.push(writeRecordBatch(records, from, to, bytes, producer, 5).toString('hex'));
          expected.set(records.partition, list);
          from = to;
        }
      const got = new Map<number, string[]>();
      for (const b of sink.batches()) {
        const out = b.encode(producer, 5);
        expect(out.buffer).toBe(b.slab.buf.buffer); // the slab itself, not a copy
        expect(splitAndValidate(out)).toHaveLength(1);
        const list = got.get(b.partition) ?? [];
        list.push(out.toString('hex'));
        got.set(b.partition, list);
      }
      expect(got).toEqual(expected);
      // A small maximum cuts some partition's records into several batches.
      expect([...got.values()].some((l) => l.length > 1)).toBe(maxBytes < 1_000_000);
      sink.release();
    },
  );

  it('sends the same records lz4-compressed after compress(): a valid batch the reader reads back, in fewer bytes', () => {
    const enc = encoder(true);
    const sink = new PartitionedBatches(3, 1_000_000, 1, new SlabPool(4096));
    enc.encodeRowsFramed(rowsOfLines(lines), 5, false, sink);
    for (const b of sink.batches()) {
      const plain = Buffer.from(b.encode(producer, 5));
      b.compress();
      expect(b.wireBytes).toBeLessThan(b.bytes / 3);
      const packed = b.encode(producer, 5);
      expect(packed.length).toBe(b.wireBytes);
      const [h] = splitAndValidate(packed);
      expect(h.compression).toBe(3);
      const values = (batch: Buffer) => {
        const out: Array<[number, string | null]> = [];
        for (const v of scanBatches(batch, 't'))
          forEachRecord(v, 0n, 't', (o, value) => out.push([o, value?.toString('hex') ?? null]));
        return out;
      };
      expect(values(packed)).toEqual(values(plain));
      expect(values(plain)).toHaveLength(b.count);
    }
    sink.release();
  });
});

describe('FramedRecords', () => {
  const run = { name: Buffer.from('pgferry.run'), value: Buffer.from('0123456789abcdef') };
  const records = Array.from({ length: 200 }, (_, i) => ({
    topic: i % 3 === 0 ? 'a' : 'b',
    partition: i % 2,
    key: i % 7 === 0 ? null : Buffer.from(`k${i}`),
    value: i % 11 === 0 ? null : Buffer.from('v'.repeat((i * 37) % 300)),
    pos: i % 5 === 0 ? null : Buffer.from(`pos-${i}`.padEnd(12, '.')),
  }));
  const add = (sink: FramedRecords) => {
    const scratch = Buffer.alloc(12);
    for (const r of records) {
      // The position header's buffer is reused, as the change publisher does.
      if (r.pos) r.pos.copy(scratch);
      sink.add(
        r.topic,
        r.partition,
        r.key,
        r.value,
        r.pos ? { name: Buffer.from('pgferry.pos'), value: scratch } : null,
      );
    }
  };

  it('writes the batches writeRecordBatch writes for the same records and headers', () => {
    const sink = new FramedRecords(1_000_000, [run]);
    add(sink);
    expect(sink.count).toBe(200);
    const got = sink.take();
    expect(sink.count).toBe(0);
    for (const { topic, batches } of got)
      for (const b of batches) {
        const parts = new PartitionRecords(b.partition);
        for (const r of records.filter((x) => x.topic === topic && x.partition === b.partition)) {
          const headers = [{ key: 'pgferry.run', value: run.value }];
          if (r.pos) headers.push({ key: 'pgferry.pos', value: r.pos });
          parts.push(r.key, r.value, encodeHeaders(headers));
        }
        const { to, bytes } = planBatch(parts, 0, 1_000_000);
        expect(to).toBe(parts.length);
        expect(b.encode(producer, 5).toString('hex')).toBe(
          writeRecordBatch(parts, 0, to, bytes, producer, 5).toString('hex'),
        );
      }
    expect(got.map((g) => [g.topic, g.batches.length])).toEqual([
      ['a', 2],
      ['b', 2],
    ]);
  });

  it('closes a partition batch before it passes the maximum, and keeps every record in order', () => {
    const sink = new FramedRecords(2_000);
    add(sink);
    const seen: string[] = [];
    for (const { topic, batches } of sink.take())
      for (const b of batches) {
        const bytes = b.encode(producer, 5);
        expect(bytes.length <= 2_000 || b.count === 1).toBe(true);
        for (const r of decodeRecords(bytes))
          seen.push(
            `${topic}/${b.partition}:${r.key?.toString() ?? '-'}:${r.value?.length ?? -1}:${r.headers.length}`,
          );
      }
    const want = records.map(
      (r) =>
        `${r.topic}/${r.partition}:${r.key?.toString() ?? '-'}:${r.value?.length ?? -1}:${r.pos ? 1 : 0}`,
    );
    const byPartition = (l: string[]) =>
      l.slice().sort((x, y) => x.split(':')[0].localeCompare(y.split(':')[0]));
    expect(byPartition(seen)).toEqual(byPartition(want));
  });
});
