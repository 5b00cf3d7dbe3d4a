import { randomBytes } from 'node:crypto';
import { crc32c, crc32cIsNative, crc32cJs } from './crc32c';

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
  it.each([
    ['crc32c', crc32c],
    ['crc32cJs', crc32cJs],
  ])('%s matches the bitwise definition on random buffers and sub-ranges', (_name, crc) => {
    for (let n = 0; n < 300; n += 7) {
      const b = randomBytes(n);
      expect(crc(b)).toBe(reference(b));
      expect(crc(b, n >> 2, n - (n >> 3))).toBe(reference(b, n >> 2, n - (n >> 3)));
    }
    for (const n of [255, 256, 257, 4096, 70001]) {
      const b = randomBytes(n);
      expect(crc(b)).toBe(reference(b));
      expect(crc(b, 3, n - 5)).toBe(reference(b, 3, n - 5));
    }
    expect(crc(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('runs the native code on linux x64 (the package ships its binary for it)', () => {
    const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
    expect(crc32cIsNative || !linuxX64).toBe(true);
  });
});
