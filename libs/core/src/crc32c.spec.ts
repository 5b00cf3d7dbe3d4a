import { randomBytes } from 'node:crypto';
import { crc32c } from './crc32c';

/** Bit by bit, straight from the definition: the reference the table-driven code must match. */
function reference(buf: Buffer, start = 0, end = buf.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) {
    c ^= buf[i];
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the bitwise definition on random buffers and sub-ranges', () => {
    for (let n = 0; n < 300; n += 7) {
      const b = randomBytes(n);
      expect(crc32c(b)).toBe(reference(b));
      expect(crc32c(b, n >> 2, n - (n >> 3))).toBe(reference(b, n >> 2, n - (n >> 3)));
    }
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});
