import { daysFromCivil } from './civil-time';
import { CopyBinaryTuples, writeI32 } from './copy-binary-tuples';

/** Days from 1970-01-01 to 2000-01-01, PostgreSQL's date and timestamp epoch. */
export const PG_EPOCH_DAYS = 10957;
/** Microseconds from 1970-01-01 to 2000-01-01. */
export const PG_EPOCH_MICROS = 946684800000000;

/** numeric's sign words (src/backend/utils/adt/numeric.c). */
const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;
/** numeric's limits: dscale is 14 bits, weight an int16. */
const NUMERIC_DSCALE_MAX = 0x3fff;
const NUMERIC_WEIGHT_MAX = 0x7fff;

/** Reused scratch for numeric digits (decimal, then base 10000). */
let DIGITS = new Uint8Array(64);
let GROUPS = new Uint16Array(32);

/**
 * COPY binary tuples, written into large buffers and handed to COPY FROM STDIN as they are: the
 * format and the plain values (CopyBinaryTuples), and here the values converted on the way
 * (date and time, numeric, one-dimensional arrays of text-like elements). Methods that take a
 * value another type's text form returns false, writing nothing, when the value is not one they
 * can send exactly; the caller then sends the batch as COPY text.
 */
export class CopyBinarySink extends CopyBinaryTuples {
  /** date from days since 1970-01-01; PostgreSQL's infinities are INT32 max and min on both sides. */
  date(days: number): boolean {
    let v: number;
    if (days === 2147483647 || days === -2147483648) v = days;
    else {
      v = days - PG_EPOCH_DAYS;
      if (v <= -2147483648) return false;
    }
    this.ensure(8);
    this.i32(4);
    this.i32(v);
    return true;
  }

  /** date 'infinity' or '-infinity' (the only texts an Avro date's string branch carries). */
  dateText(src: Buffer, start: number, end: number): boolean {
    const inf = infinity(src, start, end);
    if (inf === 0) return false;
    this.ensure(8);
    this.i32(4);
    this.i32(inf > 0 ? 2147483647 : -2147483648);
    return true;
  }

  /** timestamp from microseconds since 1970-01-01 (an Avro local-timestamp-micros). */
  timestamp(micros: number | bigint): boolean {
    if (typeof micros === 'number') {
      const v = micros - PG_EPOCH_MICROS;
      if (!Number.isSafeInteger(v)) return false;
      this.ensure(12);
      this.i32(8);
      this.i64(v);
      return true;
    }
    // The long's extremes are what the text path prints as infinity and -infinity: not a
    // timestamp to write here.
    if (micros >= 9223372036854775807n || micros <= -9223372036854775808n) return false;
    const v = micros - BigInt(PG_EPOCH_MICROS);
    if (v >= 9223372036854775807n || v <= -9223372036854775808n) return false;
    this.ensure(12);
    this.i32(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
    return true;
  }

  /** timestamp or timestamptz 'infinity' / '-infinity': INT64 max and min. */
  timestampInfinity(src: Buffer, start: number, end: number): boolean {
    const inf = infinity(src, start, end);
    if (inf === 0) return false;
    this.ensure(12);
    this.i32(8);
    if (inf > 0) {
      this.i32(0x7fffffff);
      this.i32(-1);
    } else {
      this.i32(-0x80000000);
      this.i32(0);
    }
    return true;
  }

  /**
   * timestamptz from its text with TimeZone UTC, "YYYY-MM-DD HH:MM:SS[.ffffff]+00", years 0001
   * to 9999, or an infinity. Anything else (BC, a longer year, another offset) returns false.
   */
  timestamptz(src: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (n < 22) return this.timestampInfinity(src, start, end);
    if (
      src[start + 4] !== 45 ||
      src[start + 7] !== 45 ||
      src[start + 10] !== 32 ||
      src[start + 13] !== 58 ||
      src[start + 16] !== 58 ||
      src[end - 3] !== 43 ||
      src[end - 2] !== 48 ||
      src[end - 1] !== 48
    )
      return false;
    const y1 = twoDigits(src, start);
    const y2 = twoDigits(src, start + 2);
    const mo = twoDigits(src, start + 5);
    const dd = twoDigits(src, start + 8);
    const hh = twoDigits(src, start + 11);
    const mi = twoDigits(src, start + 14);
    const ss = twoDigits(src, start + 17);
    if (y1 < 0 || y2 < 0 || mo < 1 || mo > 12 || dd < 1 || dd > 31 || hh < 0 || hh > 23 || mi < 0 || mi > 59)
      return false;
    if (ss < 0 || ss > 59 || dd > daysInMonth(y1 * 100 + y2, mo)) return false;
    let micros = 0;
    const fracEnd = n - 3;
    if (fracEnd > 19) {
      if (src[start + 19] !== 46 || fracEnd - 20 < 1 || fracEnd - 20 > 6) return false;
      let scale = 100000;
      for (let i = 20; i < fracEnd; i++, scale /= 10) {
        const x = src[start + i] - 48;
        if (x < 0 || x > 9) return false;
        micros += x * scale;
      }
    } else if (fracEnd !== 19) return false;
    const year = y1 * 100 + y2;
    if (year === 0) return false;
    const days = daysFromCivil(year, mo, dd) - PG_EPOCH_DAYS;
    this.ensure(12);
    this.i32(8);
    this.i64Micros(days * 86400 + hh * 3600 + mi * 60 + ss, micros);
    return true;
  }

  /** numeric from an Avro decimal of 0 to 6 bytes (a safe integer) at `scale`. */
  numericDecimal(src: Buffer, at: number, n: number, scale: number): boolean {
    let v = n === 0 ? 0 : src[at] & 0x80 ? src[at] - 256 : src[at];
    for (let i = 1; i < n; i++) v = v * 256 + src[at + i];
    const neg = v < 0;
    if (neg) v = -v;
    // Decimal digits of v, left-padded with zeros to at least scale + 1 digits.
    let len = 0;
    for (let x = v; x > 0; x = Math.floor(x / 10)) len++;
    const total = Math.max(len, scale + 1);
    if (DIGITS.length < total) DIGITS = new Uint8Array(2 * total);
    const dig = DIGITS;
    for (let i = total - 1; i >= 0; i--) {
      const q = Math.floor(v / 10);
      dig[i] = v - q * 10;
      v = q;
    }
    return this.numericDigits(neg, 0, total - scale, scale);
  }

  /**
   * numeric from its text: [-]digits[.digits], NaN, Infinity or -Infinity (numeric_out's
   * forms). Anything else (an exponent, spaces) returns false.
   */
  numericText(src: Buffer, start: number, end: number): boolean {
    let p = start;
    const neg = src[p] === 45;
    if (neg) p++;
    const c = src[p];
    if (c === 78 || c === 73) {
      const special = numericSpecial(src, p, end, neg);
      if (special < 0) return false;
      this.ensure(12);
      this.i32(8);
      this.i16(0);
      this.i16(0);
      this.i16(special);
      this.i16(0);
      return true;
    }
    const n = end - p;
    if (DIGITS.length < n) DIGITS = new Uint8Array(2 * n);
    const dig = DIGITS;
    let k = 0;
    let nInt = -1;
    for (; p < end; p++) {
      const x = src[p] - 48;
      if (x >= 0 && x <= 9) dig[k++] = x;
      else if (src[p] === 46 && nInt < 0) nInt = k;
      else return false;
    }
    if (nInt < 0) nInt = k;
    if (k === 0) return false;
    return this.numericDigits(neg, 0, nInt, k - nInt);
  }

  /**
   * numeric from DIGITS[from, from + nInt + nFrac): nInt integer digits, then nFrac fraction
   * digits (the display scale), grouped in base 10000 around the decimal point.
   */
  private numericDigits(neg: boolean, from: number, nInt: number, nFrac: number): boolean {
    if (nFrac > NUMERIC_DSCALE_MAX) return false;
    const dig = DIGITS;
    const intGroups = Math.ceil(nInt / 4);
    const groups = intGroups + Math.ceil(nFrac / 4);
    if (GROUPS.length < groups) GROUPS = new Uint16Array(2 * groups);
    const g = GROUPS;
    // Digit i (0-based from the first) sits at position lead + i of the 4-digit grid.
    const lead = intGroups * 4 - nInt;
    g.fill(0, 0, groups);
    for (let i = 0; i < nInt + nFrac; i++) {
      const pos = lead + i;
      const gi = pos >> 2;
      g[gi] = g[gi] * 10 + dig[from + i];
    }
    // Digits past the last in their group count as zeros on the right.
    const tail = (lead + nInt + nFrac) & 3;
    if (tail) g[groups - 1] *= tail === 1 ? 1000 : tail === 2 ? 100 : 10;
    let first = 0;
    while (first < groups && g[first] === 0) first++;
    let last = groups - 1;
    while (last >= first && g[last] === 0) last--;
    const ndigits = last - first + 1;
    const weight = ndigits ? intGroups - 1 - first : 0;
    if (weight > NUMERIC_WEIGHT_MAX || weight < -0x8000) return false;
    this.ensure(12 + 2 * ndigits);
    this.i32(8 + 2 * ndigits);
    this.i16(ndigits);
    this.i16(weight);
    this.i16(neg && ndigits ? NUMERIC_NEG : NUMERIC_POS);
    this.i16(nFrac);
    for (let i = first; i <= last; i++) this.i16(g[i]);
    return true;
  }

  /**
   * A one-dimensional array of a text-like element type from array_out's text ("{a,"b c",NULL}",
   * "{}"). Dimension decorations, nested braces, or anything array_out would not print return
   * false.
   */
  textArray(src: Buffer, start: number, end: number, elementOid: number): boolean {
    if (end - start < 2 || src[start] !== 123 || src[end - 1] !== 125) return false;
    // Each element costs at most its text plus 4 bytes of length, and takes at least 2 bytes of
    // the text (one character and a comma): at most 2.5 times the text, after the header.
    this.ensure(24 + ((5 * (end - start)) >> 1) + 4);
    const b = this.buf;
    const at = this.pos;
    if (end - start === 2) {
      this.i32(12);
      this.i32(0);
      this.i32(0);
      this.i32(elementOid);
      return true;
    }
    // length, ndim, flags (has NULLs), element type, dimension length, lower bound: patched last.
    let w = at + 24;
    let count = 0;
    let hasNull = 0;
    let p = start + 1;
    const last = end - 1;
    for (;;) {
      const lenAt = w;
      w += 4;
      if (src[p] === 34) {
        p++;
        for (;;) {
          if (p >= last) return false;
          let c = src[p++];
          if (c === 34) break;
          if (c === 92) {
            if (p >= last) return false;
            c = src[p++];
          }
          b[w++] = c;
        }
        writeI32(b, lenAt, w - lenAt - 4);
      } else {
        const from = p;
        while (p < last && src[p] !== 44) {
          const c = src[p];
          if (c === 34 || c === 92 || c === 123 || c === 125 || c === 32 || (c >= 9 && c <= 13)) return false;
          b[w++] = c;
          p++;
        }
        const n = p - from;
        if (n === 0) return false;
        if (
          n === 4 &&
          (src[from] | 32) === 110 &&
          (src[from + 1] | 32) === 117 &&
          (src[from + 2] | 32) === 108 &&
          (src[from + 3] | 32) === 108
        ) {
          w = lenAt + 4;
          writeI32(b, lenAt, -1);
          hasNull = 1;
        } else writeI32(b, lenAt, n);
      }
      count++;
      if (p === last) break;
      if (src[p++] !== 44) return false;
    }
    writeI32(b, at, w - at - 4);
    writeI32(b, at + 4, 1);
    writeI32(b, at + 8, hasNull);
    writeI32(b, at + 12, elementOid);
    writeI32(b, at + 16, count);
    writeI32(b, at + 20, 1);
    this.pos = w;
    return true;
  }
}

function daysInMonth(y: number, m: number): number {
  if (m !== 2) return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28;
}

/** The two decimal digits at src[at, at + 2) as a number, or -1. */
function twoDigits(src: Buffer, at: number): number {
  const a = src[at] - 48;
  const b = src[at + 1] - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

const INFINITY = Buffer.from('infinity', 'latin1');

/** 1 for "infinity", -1 for "-infinity", else 0. */
function infinity(src: Buffer, start: number, end: number): number {
  const neg = src[start] === 45;
  const from = neg ? start + 1 : start;
  if (end - from !== 8) return 0;
  for (let i = 0; i < 8; i++) if (src[from + i] !== INFINITY[i]) return 0;
  return neg ? -1 : 1;
}

const NAN = Buffer.from('NaN', 'latin1');
const INFINITY_CAP = Buffer.from('Infinity', 'latin1');

/** numeric's sign word for "NaN", "Infinity", "-Infinity" at src[p, end) (after any minus), or -1. */
function numericSpecial(src: Buffer, p: number, end: number, neg: boolean): number {
  const word = !neg && end - p === 3 ? NAN : end - p === 8 ? INFINITY_CAP : null;
  if (!word) return -1;
  for (let i = 0; i < word.length; i++) if (src[p + i] !== word[i]) return -1;
  return word === NAN ? NUMERIC_NAN : neg ? NUMERIC_NINF : NUMERIC_PINF;
}
