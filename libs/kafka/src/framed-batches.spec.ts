import {
  encodeHeaders,
  splitAndValidate,
  forEachRecord,
  scanBatches,
  PartitionRecords,
  planBatch,
  writeRecordBatch,
} from '@pgferry/kafka-protocol';
import { SlabPool } from '@pgferry/core';
import { rowsOfLines } from '@pgferry/pg';
import { buildSchemas, TableEncoder, column as col } from '@pgferry/avro';
import { PartitionedBatches } from './framed-batches';
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
