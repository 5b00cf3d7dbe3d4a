import { DataError } from '@pgferry/core';

/**
 * The zig-zag varints of Kafka's record format (Java's ByteUtils.writeVarint / writeVarlong):
 * record lengths, deltas, key, value and header lengths. A varint holds an int32 and takes 1 to 5
 * bytes; a varlong an int64 and 1 to 10 bytes. Every reader and writer of records uses these.
 * A malformed varint is a DataError without a location: the reader of the record names it.
 */

/** A read position in a buffer, moved by the readers. */
export interface Cursor {
  buf: Buffer;
  pos: number;
}

/** Bytes of the zig-zag varint of an int32. */
export function varintBytes(n: number): number {
  const z = n < 0 ? -2 * n - 1 : 2 * n;
  return z < 0x80 ? 1 : z < 0x4000 ? 2 : z < 0x200000 ? 3 : z < 0x10000000 ? 4 : 5;
}

/** Writes the zig-zag varint of an int32 at pos; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  let z = n < 0 ? -2 * n - 1 : 2 * n;
  while (z >= 0x80) {
    buf[pos++] = (z & 0x7f) | 0x80;
    z = Math.floor(z / 128);
  }
  buf[pos++] = z;
  return pos;
}

/**
 * Reads a zig-zag varint of at most 5 bytes (an int32); one and two bytes, most fields of a
 * record, inline. A longer one is a DataError (the record is malformed).
 */
export function readVarint(c: Cursor): number {
  const buf = c.buf;
  const pos = c.pos;
  const b0 = buf[pos];
  if (b0 < 0x80) {
    c.pos = pos + 1;
    return (b0 >>> 1) ^ -(b0 & 1);
  }
  const b1 = buf[pos + 1];
  if (b1 < 0x80) {
    const z = (b0 & 0x7f) | (b1 << 7);
    c.pos = pos + 2;
    return (z >>> 1) ^ -(z & 1);
  }
  let z = 0;
  let shift = 0;
  for (;;) {
    const b = buf[c.pos++];
    if (b === undefined) throw new DataError('varint runs past the end');
    z += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
    shift += 7;
    if (shift > 28) throw new DataError('varint longer than 5 bytes');
  }
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

/** Skips a varint or varlong (at most 10 bytes). */
export function skipVarint(c: Cursor): void {
  for (let i = 0; i < 10; i++) {
    const b = c.buf[c.pos++];
    if (b === undefined) throw new DataError('varint runs past the end');
    if (b < 0x80) return;
  }
  throw new DataError('varlong longer than 10 bytes');
}

/** Reads a zig-zag varlong (an int64). */
export function readVarlong(c: Cursor): bigint {
  let value = 0n;
  let shift = 0n;
  for (;;) {
    const b = c.buf[c.pos++];
    if (b === undefined) throw new DataError('varlong runs past the end');
    value |= BigInt(b & 0x7f) << shift;
    if (b < 0x80) break;
    shift += 7n;
    if (shift > 63n) throw new DataError('varlong longer than 10 bytes');
  }
  return (value >> 1n) ^ -(value & 1n);
}

function zigzag64(n: bigint): bigint {
  const z = (n << 1n) ^ (n >> 63n);
  return z < 0n ? z + (1n << 64n) : z;
}

/** Bytes of the zig-zag varlong of an int64. */
export function varlongBytes(n: bigint): number {
  if (n >= -(2n ** 30n) && n < 2n ** 30n) return varintBytes(Number(n));
  let z = zigzag64(n);
  let bytes = 1;
  while (z >= 0x80n) {
    z >>= 7n;
    bytes++;
  }
  return bytes;
}

/** Writes the zig-zag varlong of an int64 at pos; returns the position after it. */
export function writeVarlong(buf: Buffer, pos: number, n: bigint): number {
  if (n >= -(2n ** 30n) && n < 2n ** 30n) return writeVarint(buf, pos, Number(n));
  let z = zigzag64(n);
  while (z >= 0x80n) {
    buf[pos++] = Number(z & 0x7fn) | 0x80;
    z >>= 7n;
  }
  buf[pos++] = Number(z);
  return pos;
}
