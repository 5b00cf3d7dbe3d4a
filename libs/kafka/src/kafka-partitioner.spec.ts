import { randomBytes } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { keyPartition, KeyPartitioner } from './kafka-partitioner';

describe('KeyPartitioner', () => {
  const meta = (n: number): PartitionMetadata[] =>
    Array.from({ length: n }, (_, i) => ({
      partitionId: i,
      leader: 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));

  it.each([1, 3, 4, 12])('puts every key where kafkajs DefaultPartitioner does (%s partitions)', (n) => {
    const ours = KeyPartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    const partitionMetadata = meta(n);
    for (let i = 0; i < 3000; i++) {
      const key = randomBytes(i % 37);
      const message = { key, value: null };
      expect(ours({ topic: 't', partitionMetadata, message })).toBe(
        theirs({ topic: 't', partitionMetadata, message }),
      );
    }
    const message = { key: 'a string key', value: null };
    expect(ours({ topic: 't', partitionMetadata, message })).toBe(
      theirs({ topic: 't', partitionMetadata, message }),
    );
  });

  it('gives a key inside a larger buffer the partition of the key alone', () => {
    const buf = randomBytes(200);
    for (let start = 0; start < 20; start++)
      for (let len = 0; len < 40; len++)
        expect(keyPartition(buf, 12, start, start + len)).toBe(
          keyPartition(Buffer.from(buf.subarray(start, start + len)), 12),
        );
  });

  it('keeps a message partition given and spreads keyless messages', () => {
    const p = KeyPartitioner();
    const partitionMetadata = meta(4);
    expect(p({ topic: 't', partitionMetadata, message: { key: 'x', value: null, partition: 2 } })).toBe(2);
    const seen = new Set(
      Array.from({ length: 8 }, () => p({ topic: 't', partitionMetadata, message: { value: null } })),
    );
    expect(seen.size).toBe(4);
  });
});
