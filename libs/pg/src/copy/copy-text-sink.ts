import { CopyChunks } from './copy-chunks';

/** For each byte, the letter that follows the backslash in its COPY text escape, or 0. */
const COPY_ESCAPE = new Uint8Array(256);
COPY_ESCAPE[92] = 92;
COPY_ESCAPE[10] = 110; // n
COPY_ESCAPE[13] = 114; // r
COPY_ESCAPE[9] = 116; // t

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/**
 * Bytes of COPY text lines, written into large buffers and handed to COPY FROM STDIN as they
 * are: no string per field or per line.
 */
export class CopyTextSink extends CopyChunks {
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  ascii(s: string): void {
    this.ensure(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  /**
   * An integer in decimal, as String(n) prints it, written digit by digit: no string per
   * value. Exact for safe integers (what readLong returns as a number); a bigint goes through
   * its string.
   */
  int(n: number | bigint): void {
    if (typeof n === 'bigint') return this.ascii(String(n));
    this.ensure(17);
    const b = this.buf;
    let p = this.pos;
    if (n < 0) {
      b[p++] = 45;
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let w = p + digits;
    do {
      const q = Math.floor(n / 10);
      b[--w] = 48 + (n - q * 10);
      n = q;
    } while (n > 0);
    this.pos = p + digits;
  }

  /** A text value, escaped for COPY text (backslash, newline, carriage return, tab). */
  text(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(2 * n);
    const start = this.pos;
    this.buf.write(s, start, n, 'utf8');
    this.escapeInPlace(start, start + n);
  }

  /** UTF-8 bytes of a text value, escaped for COPY text. */
  utf8(src: Buffer, start: number, end: number): void {
    this.ensure(2 * (end - start));
    if (end - start > 256) {
      const at = this.pos;
      src.copy(this.buf, at, start, end);
      this.escapeInPlace(at, at + end - start);
      return;
    }
    // Short values: one pass that copies and escapes, cheaper than Buffer#copy and a scan.
    const b = this.buf;
    let w = this.pos;
    for (let i = start; i < end; i++) {
      const c = src[i];
      const e = COPY_ESCAPE[c];
      if (e === 0) b[w++] = c;
      else {
        b[w++] = 92;
        b[w++] = e;
      }
    }
    this.pos = w;
  }

  /**
   * A bytea value's COPY text from its bytes: the hex output form "\\x..." with its backslash
   * escaped, as text() prints the converter's string, without the string.
   */
  byteaHex(src: Buffer, start: number, end: number): void {
    this.ensure(3 + 2 * (end - start));
    const b = this.buf;
    let w = this.pos;
    b[w++] = 92;
    b[w++] = 92;
    b[w++] = 120;
    for (let i = start; i < end; i++) {
      const c = src[i];
      b[w++] = HEX_DIGITS[c >> 4];
      b[w++] = HEX_DIGITS[c & 15];
    }
    this.pos = w;
  }

  /** Escapes buf[start, end) in place (room for twice the length is ensured) and moves pos. */
  private escapeInPlace(start: number, end: number): void {
    const b = this.buf;
    let specials = 0;
    for (let i = start; i < end; i++) {
      const c = b[i];
      if (c === 92 || c === 10 || c === 13 || c === 9) specials++;
    }
    if (specials === 0) {
      this.pos = end;
      return;
    }
    // Back to front, so nothing is overwritten before it is read.
    let w = end + specials;
    for (let i = end - 1; i >= start; i--) {
      const c = b[i];
      if (c === 92 || c === 10 || c === 13 || c === 9) {
        b[--w] = c === 92 ? 92 : c === 10 ? 110 : c === 13 ? 114 : 116;
        b[--w] = 92;
      } else b[--w] = c;
    }
    this.pos = end + specials;
  }

  /** A whole line of COPY text, escaped already and ending with its newline. */
  line(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
    this.finishRow();
  }

  /** Ends the current line (with its newline); `rollback` drops the unfinished line instead. */
  endLine(): void {
    this.byte(10);
    this.finishRow();
  }

  /** Every finished line, in order; the sink is empty afterwards. */
  take(): Buffer[] {
    return this.takeRows();
  }
}
