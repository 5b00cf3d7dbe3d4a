import { DataError } from '@pgferry/core';

/**
 * A read position in an Avro body, buf[start, end) (a value inside a fetched batch). The readers
 * do not check the end (a read past it gives the next bytes, or 0s): their callers check the
 * position once per value; lengths are checked against `end`. Bad bytes are DataErrors without
 * a location beyond the byte in the body; the decoder of a record names its schema, the applier
 * its topic and offset.
 */
export interface Cursor {
  buf: Buffer;
  pos: number;
  start: number;
  end: number;
}

/** An Avro long: a number when it is within 2^48 (7 varint bytes), else exactly, as a BigInt. */
export function readLong(c: Cursor): number | bigint {
  const buf = c.buf;
  let n = 0;
  let shift = 1;
  for (let i = 0; ; i++) {
    const b = buf[c.pos++];
    n += (b & 0x7f) * shift;
    if (!(b & 0x80)) break;
    shift *= 128;
    // Seven bytes hold 49 bits, exact in a double; a longer varint goes on in BigInt.
    if (i === 6) return readLongBig(c, n, shift);
  }
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/**
 * An Avro long as readLong reads it, but a number for every value whose zigzag form is below
 * 2^53 (8 varint bytes, the eighth below 16): microsecond timestamps of this era stay numbers.
 */
export function readSafeLong(c: Cursor): number | bigint {
  const buf = c.buf;
  const at = c.pos;
  let n = 0;
  let shift = 1;
  for (let i = 0; i < 8; i++) {
    const b = buf[c.pos++];
    if (i === 7) {
      if (b & 0x80 || b >= 16) break;
      n += b * shift;
      return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    }
    n += (b & 0x7f) * shift;
    if (!(b & 0x80)) return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    shift *= 128;
  }
  c.pos = at;
  return readLong(c);
}

/** The rest of a varint longer than 7 bytes (beyond 2^49), exactly, as a BigInt. */
function readLongBig(c: Cursor, low: number, shift: number): bigint {
  let n = BigInt(low);
  let s = BigInt(shift);
  let b: number;
  do {
    b = c.buf[c.pos++];
    n += BigInt(b & 0x7f) * s;
    s *= 128n;
  } while (b & 0x80);
  return n & 1n ? -((n + 1n) >> 1n) : n >> 1n;
}

export function readInt(c: Cursor): number {
  const n = Number(readLong(c));
  // A corrupt varint must not become a 20-digit "int" in the COPY text.
  if (n < -2147483648 || n > 2147483647) throw new DataError(`Avro int ${n} is out of the int range`);
  return n;
}

export function readLength(c: Cursor): number {
  const n = readInt(c);
  if (n < 0 || c.pos + n > c.end)
    throw new DataError(`Avro length ${n} at byte ${c.pos - c.start} runs past the value`);
  return n;
}

/**
 * The text of an Avro decimal of 1 to 6 bytes (big-endian two's complement) at `scale`, as
 * avro-mapping's bytesToDecimal prints it.
 */
export function decimalText(buf: Buffer, at: number, n: number, scale: number): string {
  let v = buf[at] & 0x80 ? buf[at] - 256 : buf[at];
  for (let i = 1; i < n; i++) v = v * 256 + buf[at + i];
  const neg = v < 0;
  const digits = String(neg ? -v : v).padStart(scale + 1, '0');
  const out = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return neg ? `-${out}` : out;
}
