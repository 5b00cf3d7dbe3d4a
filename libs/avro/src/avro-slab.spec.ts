import avro from 'avsc';
import { avscOptions } from './avro-mapping';
import { AvroSlab } from './avro-slab';

describe('AvroSlab.long', () => {
  const longType = avro.Type.forSchema('long', avscOptions());
  const edges = [
    0n,
    1n,
    -1n,
    63n,
    -64n,
    2n ** 30n - 1n,
    2n ** 30n,
    -(2n ** 30n),
    -(2n ** 30n) - 1n,
    1_733_000_000_123n,
    0x16b3748n,
    2n ** 52n - 1n,
    2n ** 52n,
    2n ** 52n + 1n,
    -(2n ** 52n),
    -(2n ** 52n) - 1n,
    2n ** 53n - 1n,
    -(2n ** 53n) + 1n,
    2n ** 63n - 1n,
    -(2n ** 63n),
  ];

  it('writes avsc bytes for numbers and BigInts on both sides of every fast-path edge', () => {
    const safe = edges.filter(
      (n) => n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER),
    );
    const write = (n: number | bigint) => {
      const out = new AvroSlab(16);
      out.long(n);
      return { n: String(n), hex: out.end().toString('hex') };
    };
    const want = (n: bigint) => ({ n: String(n), hex: longType.toBuffer(n).toString('hex') });
    expect(edges.map(write)).toEqual(edges.map(want));
    expect(safe.map((n) => write(Number(n)))).toEqual(safe.map(want));
  });
});
