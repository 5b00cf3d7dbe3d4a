/**
 * The LZ4 frame format (lz4's "Frame Format Description" 1.6), which Kafka's compression.type
 * lz4 puts around the records of a batch (magic v2; Kafka 0.10+ headers, with the correct header
 * checksum). A frame is:
 *   magic 0x184D2204 (LE) | FLG | BD | [content size u64] | [dictionary id u32] | HC
 *   blocks: size u32 LE (high bit: stored uncompressed) | data | [block checksum u32]
 *   end mark u32 0 | [content checksum u32]
 * FLG: version 01 (bits 7-6), block independence (5), block checksum (4), content size (3),
 * content checksum (2; after the end mark, so a reader may leave it), dictionary id (0).
 * BD bits 6-4: the largest block, 4 (64 KB) to 7 (4 MB).
 * HC: the second byte of the xxHash32 of the descriptor (FLG up to HC).
 *
 * The blocks are compressed and decompressed by lz4-napi (prebuilt lz4_flex code) when its
 * binary loads on this platform; decompression falls back to the JavaScript below otherwise, so
 * every batch stays readable, and compression is then not offered (lz4IsNative). Checksums in
 * frames from other producers are skipped, not checked: the record batch's CRC-32C covers the
 * frame already.
 */

type NativeLz4 = {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Buffer): Buffer;
};

function loadNative(): NativeLz4 | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lz4 = require('lz4-napi') as NativeLz4;
    const probe = Buffer.from('pgferry pgferry pgferry pgferry');
    return lz4.uncompressSync(lz4.compressSync(probe)).equals(probe) ? lz4 : null;
  } catch {
    return null;
  }
}

const native = loadNative();

/** Whether this platform compresses LZ4 (lz4-napi's binary loads); decompression always works. */
export const lz4IsNative = native !== null;

const MAGIC = 0x184d2204;
const VERSION = 0x40;
const BLOCK_INDEPENDENCE = 0x20;
const BLOCK_CHECKSUM = 0x10;
const CONTENT_SIZE = 0x08;
const DICTIONARY_ID = 0x01;
const UNCOMPRESSED = 0x80000000;
/** BD codes 4..7 and their largest block. */
const BLOCK_SIZES = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

export class Lz4FrameError extends Error {}

/** The LZ4 frame of src[start, end): independent blocks, no checksums (Kafka's own choice). */
export function lz4FrameCompress(src: Buffer, start = 0, end = src.length): Buffer {
  if (!native)
    throw new Lz4FrameError('LZ4 compression is not available on this platform (lz4-napi did not load)');
  let code = 4;
  while (code < 7 && BLOCK_SIZES[code] < end - start) code++;
  const blockSize = BLOCK_SIZES[code];
  // compressSync prepends the block's uncompressed size (u32 LE): the frame's block header
  // takes its place. A block that does not shrink is stored as it is.
  const blocks: Array<{ data: Buffer; from: number; packed: boolean }> = [];
  let total = 7 + 4;
  for (let at = start; at < end; at += blockSize) {
    const raw = src.subarray(at, Math.min(end, at + blockSize));
    const packed = native.compressSync(raw);
    if (packed.length - 4 < raw.length) blocks.push({ data: packed, from: 4, packed: true });
    else blocks.push({ data: raw, from: 0, packed: false });
    total += 4 + blocks[blocks.length - 1].data.length - blocks[blocks.length - 1].from;
  }
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(MAGIC, 0);
  out[4] = VERSION | BLOCK_INDEPENDENCE;
  out[5] = code << 4;
  out[6] = headerChecksum(out, 4, 6);
  let pos = 7;
  for (const b of blocks) {
    const size = b.data.length - b.from;
    out.writeUInt32LE(b.packed ? size : (size | UNCOMPRESSED) >>> 0, pos);
    b.data.copy(out, pos + 4, b.from);
    pos += 4 + size;
  }
  out.writeUInt32LE(0, pos);
  return out;
}

/**
 * The bytes of the LZ4 frame src[start, end) (a block stored uncompressed may come back as a view
 * of src); an Lz4FrameError names what is wrong with it.
 */
export function lz4FrameDecompress(src: Buffer, start = 0, end = src.length): Buffer {
  if (end - start < 7 || src.readUInt32LE(start) !== MAGIC)
    throw new Lz4FrameError('not an LZ4 frame (bad magic number)');
  const flg = src[start + 4];
  if ((flg & 0xc0) !== VERSION) throw new Lz4FrameError(`LZ4 frame version ${flg >> 6} is not 1`);
  if (flg & DICTIONARY_ID) throw new Lz4FrameError('LZ4 frames with a dictionary are not supported');
  const maxBlock = BLOCK_SIZES[(src[start + 5] >> 4) & 7];
  if (!maxBlock)
    throw new Lz4FrameError(`LZ4 frame block size code ${(src[start + 5] >> 4) & 7} is not 4 to 7`);
  // Kafka's clients write independent blocks; Java's reader refuses linked ones, and so do we.
  if (!(flg & BLOCK_INDEPENDENCE))
    throw new Lz4FrameError(
      'LZ4 frames of linked blocks are not supported (Kafka clients write independent blocks)',
    );
  const blockChecksum = flg & BLOCK_CHECKSUM ? 4 : 0;
  let pos = start + 6 + (flg & CONTENT_SIZE ? 8 : 0) + 1;
  const parts: Buffer[] = [];
  let total = 0;
  for (;;) {
    if (pos + 4 > end) throw new Lz4FrameError('LZ4 frame ends before its end mark');
    const word = src.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break;
    const size = (word & ~UNCOMPRESSED) >>> 0;
    if (size > maxBlock || pos + size + blockChecksum > end)
      throw new Lz4FrameError(`LZ4 block of ${size} bytes runs past the frame or its block size`);
    const block =
      word & UNCOMPRESSED
        ? src.subarray(pos, pos + size)
        : native
          ? decodeBlockNative(native, src, pos, size, maxBlock)
          : decodeBlockJs(src, pos, pos + size, Buffer.allocUnsafe(maxBlock));
    parts.push(block);
    total += block.length;
    pos += size + blockChecksum;
  }
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
}

/**
 * The native decoder takes a block behind its uncompressed size (u32 LE); a frame has the block's
 * compressed size there, so the four bytes before the block are lent for the call: the frame's
 * largest block size goes in (the decoder's output capacity; it returns the actual length) and
 * the frame's bytes are put back before returning.
 */
function decodeBlockNative(lz4: NativeLz4, src: Buffer, pos: number, size: number, maxBlock: number): Buffer {
  const saved = src.readUInt32LE(pos - 4);
  src.writeUInt32LE(maxBlock, pos - 4);
  try {
    return lz4.uncompressSync(src.subarray(pos - 4, pos + size));
  } catch (err) {
    throw new Lz4FrameError(`corrupt LZ4 block: ${(err as Error).message}`);
  } finally {
    src.writeUInt32LE(saved, pos - 4);
  }
}

/**
 * The LZ4 block src[pos, end) decoded into `out` (at most out.length bytes); returns the decoded
 * part of `out`. Sequences: token (literal length << 4 | match length - 4), literal length
 * continued by 255s, literals, offset u16 LE, match length continued by 255s. The last sequence
 * has literals only.
 */
export function decodeBlockJs(src: Buffer, pos: number, end: number, out: Buffer): Buffer {
  const c = { pos };
  let o = 0;
  for (;;) {
    if (c.pos >= end) throw new Lz4FrameError('corrupt LZ4 block: it ends inside a sequence');
    const token = src[c.pos++];
    const literals = sequenceLength(src, c, end, token >> 4, 'literal');
    if (c.pos + literals > end || o + literals > out.length)
      throw new Lz4FrameError('corrupt LZ4 block: literals run past the block or the output');
    src.copy(out, o, c.pos, c.pos + literals);
    c.pos += literals;
    o += literals;
    if (c.pos === end) return out.subarray(0, o);
    if (c.pos + 2 > end) throw new Lz4FrameError('corrupt LZ4 block: a match offset runs past the block');
    const offset = src[c.pos] | (src[c.pos + 1] << 8);
    c.pos += 2;
    if (offset === 0 || offset > o)
      throw new Lz4FrameError(`corrupt LZ4 block: match offset ${offset} is outside the output`);
    const length = sequenceLength(src, c, end, token & 15, 'match') + 4;
    if (o + length > out.length) throw new Lz4FrameError('corrupt LZ4 block: a match runs past the output');
    // Overlapping matches (offset < length) repeat the bytes just written: copy byte by byte.
    if (offset >= length) {
      out.copy(out, o, o - offset, o - offset + length);
      o += length;
    } else for (let i = 0; i < length; i++, o++) out[o] = out[o - offset];
  }
}

/** A token's 4-bit length; at 15, continued by the bytes at c.pos up to the first below 255. */
function sequenceLength(src: Buffer, c: { pos: number }, end: number, nibble: number, what: string): number {
  let length = nibble;
  if (nibble !== 15) return length;
  let b;
  do {
    if (c.pos >= end) throw new Lz4FrameError(`corrupt LZ4 block: ${what} length runs past the block`);
    b = src[c.pos++];
    length += b;
  } while (b === 255);
  return length;
}

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

/** xxHash32 (seed 0) of buf[start, end) for inputs under 16 bytes (frame descriptors). */
function xxh32Short(buf: Buffer, start: number, end: number): number {
  let h = (P5 + (end - start)) | 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    h = (h + Math.imul(buf.readUInt32LE(i), P3)) | 0;
    h = Math.imul((h << 17) | (h >>> 15), P4);
  }
  for (; i < end; i++) {
    h = (h + Math.imul(buf[i], P5)) | 0;
    h = Math.imul((h << 11) | (h >>> 21), P1);
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** HC: the second byte of the descriptor's xxHash32. */
function headerChecksum(buf: Buffer, start: number, end: number): number {
  return (xxh32Short(buf, start, end) >>> 8) & 0xff;
}
