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
    for (const n of edges) {
      const want = longType.toBuffer(n).toString('hex');
      const asBig = new AvroSlab(16);
      asBig.long(n);
      expect({ n, hex: asBig.end().toString('hex') }).toEqual({ n, hex: want });
      if (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)) {
        const asNumber = new AvroSlab(16);
        asNumber.long(Number(n));
        expect({ n, hex: asNumber.end().toString('hex') }).toEqual({ n, hex: want });
      }
    }
  });
});
