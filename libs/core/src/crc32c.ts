/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka record batches v2.
 * Every batch is checksummed three times on its way (producer, broker, consumer), so this is on
 * the hot path: @node-rs/crc32 (prebuilt SIMD code, ~3.5 times the JavaScript below) when its
 * binary loads on this platform, else slicing-by-8 tables in plain JavaScript (~650 MB/s). Both
 * give the same values (crc32c.spec.ts checks each against the bitwise definition).
 */
const POLY = 0x82f63b78;
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n];
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff] ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** The plain JavaScript CRC-32C of buf[start, end). */
export function crc32cJs(buf: Buffer, start = 0, end = buf.length): number {
  let crc = -1;
  let i = start;
  while (end - i >= 8) {
    const a = (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24)) ^ crc;
    crc =
      T[1792 + (a & 0xff)] ^
      T[1536 + ((a >>> 8) & 0xff)] ^
      T[1280 + ((a >>> 16) & 0xff)] ^
      T[1024 + (a >>> 24)] ^
      T[768 + buf[i + 4]] ^
      T[512 + buf[i + 5]] ^
      T[256 + buf[i + 6]] ^
      T[buf[i + 7]];
    i += 8;
  }
  while (i < end) crc = T[(crc ^ buf[i++]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

type NativeCrc = (input: Uint8Array) => number;

/** The native CRC-32C, or null when no binary of @node-rs/crc32 loads here (another platform). */
function loadNative(): NativeCrc | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const native = (require('@node-rs/crc32') as { crc32c: NativeCrc }).crc32c;
    return native(Buffer.from('123456789')) === 0xe3069283 ? native : null;
  } catch {
    return null;
  }
}

const native = loadNative();

/** Below this many bytes the JavaScript loop beats the native call's fixed cost. */
const NATIVE_FROM = 256;

/** Whether crc32c runs the native code (for benchmarks and tests). */
export const crc32cIsNative = native !== null;

/** CRC-32C of buf[start, end). */
export function crc32c(buf: Buffer, start = 0, end = buf.length): number {
  if (native === null || end - start < NATIVE_FROM) return crc32cJs(buf, start, end);
  return native(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
}
