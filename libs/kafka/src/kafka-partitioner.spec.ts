import { randomBytes } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { keyPartition, murmur2 } from './kafka-partitioner';

describe('keyPartition', () => {
  it("hashes as the Java client's Utils.murmur2 (its UtilsTest vectors)", () => {
    const cases: Array<[string, number]> = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [text, hash] of cases) expect(murmur2(Buffer.from(text))).toBe(hash);
  });

  it.each([1, 3, 4, 12])('puts every key where kafkajs DefaultPartitioner does (%s partitions)', (n) => {
    const theirs = Partitioners.DefaultPartitioner();
    const partitionMetadata: PartitionMetadata[] = Array.from({ length: n }, (_, i) => ({
      partitionId: i,
      leader: 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));
    for (let i = 0; i < 3000; i++) {
      const key = randomBytes(i % 37);
      expect(keyPartition(key, n)).toBe(
        theirs({ topic: 't', partitionMetadata, message: { key, value: null } }),
      );
    }
  });

  it('gives a key inside a larger buffer the partition of the key alone', () => {
    const buf = randomBytes(200);
    for (let start = 0; start < 20; start++)
      for (let len = 0; len < 40; len++)
        expect(keyPartition(buf, 12, start, start + len)).toBe(
          keyPartition(Buffer.from(buf.subarray(start, start + len)), 12),
        );
  });
});
