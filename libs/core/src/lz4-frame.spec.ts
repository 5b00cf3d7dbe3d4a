import { randomBytes } from 'node:crypto';
import { compressFrameSync, compressSync, decompressFrameSync } from 'lz4-napi';
import { decodeBlockJs, Lz4FrameError, lz4FrameCompress, lz4FrameDecompress, lz4IsNative } from './lz4-frame';

/** Record-like bytes: repeated envelopes with changing numbers, blank-padded text, some noise. */
function recordLike(n: number): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (let i = 0; size < n; i++) {
    const p = Buffer.from(`{"aid":${i},"bid":${i % 7},"filler":"${' '.repeat(84)}","source":"pgferry"}`);
    parts.push(p, randomBytes(i % 5));
    size += p.length + (i % 5);
  }
  return Buffer.concat(parts).subarray(0, n);
}

const inputs: Array<[string, Buffer]> = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['short text', Buffer.from('pgferry pgferry pgferry pgferry pgferry pgferry')],
  ['random (stored uncompressed)', randomBytes(100_000)],
  ['64 KB + 1 of records', recordLike(64 * 1024 + 1)],
  ['300 KB of records', recordLike(300_000)],
  ['9 MB of records (several 4 MB blocks)', recordLike(9 * 1024 * 1024)],
  ['one byte repeated (overlapping matches)', Buffer.alloc(200_000, 0x61)],
];

describe('lz4 frames', () => {
  it('compresses natively on linux x64 (the package ships its binary for it)', () => {
    expect(lz4IsNative || !(process.platform === 'linux' && process.arch === 'x64')).toBe(true);
  });

  it.each(inputs)('%s: round trips, and lz4_flex reads our frame', (_name, data) => {
    const frame = lz4FrameCompress(data);
    expect(lz4FrameDecompress(frame).equals(data)).toBe(true);
    // An independent frame reader (it checks the header checksum too).
    expect(decompressFrameSync(frame).equals(data)).toBe(true);
  });

  it('shrinks records 3x and more, and grows random bytes by a few header bytes only', () => {
    const records = recordLike(300_000);
    expect(lz4FrameCompress(records).length).toBeLessThan(records.length / 3);
    const random = randomBytes(300_000);
    expect(lz4FrameCompress(random).length).toBeLessThanOrEqual(random.length + 7 + 4 + 2 * 4);
  });

  it('compresses a range of a larger buffer', () => {
    const data = recordLike(50_000);
    const frame = lz4FrameCompress(data, 1000, 40_000);
    expect(lz4FrameDecompress(frame).equals(data.subarray(1000, 40_000))).toBe(true);
    const padded = Buffer.concat([Buffer.from('head'), frame, Buffer.from('tail')]);
    expect(lz4FrameDecompress(padded, 4, 4 + frame.length).equals(data.subarray(1000, 40_000))).toBe(true);
  });

  it.each([
    ['64 KB blocks', {}],
    ['block and content checksums', { blockChecksums: true, contentChecksum: true }],
  ])("reads other producers' frames (lz4_flex, %s)", (_name, options) => {
    for (const [, data] of inputs) {
      const frame = compressFrameSync(data, options);
      expect(lz4FrameDecompress(frame).equals(data)).toBe(true);
    }
  });

  it('leaves the frame it read unchanged (the native decoder borrows four bytes of it)', () => {
    const frame = lz4FrameCompress(recordLike(500_000));
    const copy = Buffer.from(frame);
    lz4FrameDecompress(frame);
    expect(frame.equals(copy)).toBe(true);
  });

  it('decodes blocks in JavaScript as the native decoder does', () => {
    for (const [, data] of inputs) {
      if (data.length === 0) continue;
      const packed = compressSync(data);
      const out = decodeBlockJs(packed, 4, packed.length, Buffer.alloc(data.length));
      expect(out.equals(data)).toBe(true);
    }
  });

  it('reads frames in JavaScript where the native code does not load', () => {
    jest.isolateModules(() => {
      jest.doMock('lz4-napi', () => {
        throw new Error('no binary for this platform');
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fallback = require('./lz4-frame') as typeof import('./lz4-frame');
      expect(fallback.lz4IsNative).toBe(false);
      for (const [, data] of inputs) {
        expect(fallback.lz4FrameDecompress(lz4FrameCompress(data)).equals(data)).toBe(true);
        expect(
          fallback.lz4FrameDecompress(compressFrameSync(data, { blockChecksums: true })).equals(data),
        ).toBe(true);
      }
      expect(() => fallback.lz4FrameCompress(Buffer.from('x'))).toThrow(
        'LZ4 compression is not available on this platform (lz4-napi did not load)',
      );
      jest.dontMock('lz4-napi');
    });
  });

  it('names what is wrong with a bad frame', () => {
    const frame = lz4FrameCompress(recordLike(100_000));
    const bad = (f: Buffer) => () => lz4FrameDecompress(f);
    expect(bad(Buffer.from('not a frame at all'))).toThrow(
      new Lz4FrameError('not an LZ4 frame (bad magic number)'),
    );
    expect(bad(frame.subarray(0, frame.length - 4))).toThrow('LZ4 frame ends before its end mark');
    expect(bad(frame.subarray(0, 200))).toThrow(
      /LZ4 block of \d+ bytes runs past the frame or its block size/,
    );
    const linked = Buffer.from(frame);
    linked[4] &= ~0x20;
    expect(bad(linked)).toThrow('LZ4 frames of linked blocks are not supported');
    const zeroOffset = Buffer.from([
      0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 3, 0, 0, 0, 0x10, 0x61, 0, 0, 0, 0, 0,
    ]);
    expect(bad(zeroOffset)).toThrow(/corrupt LZ4 block/);
    expect(() => decodeBlockJs(Buffer.from([0x10, 0x61, 0, 0]), 0, 4, Buffer.alloc(100))).toThrow(
      'corrupt LZ4 block: match offset 0 is outside the output',
    );
  });
});
