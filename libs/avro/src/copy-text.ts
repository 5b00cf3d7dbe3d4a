import { isUtf8 } from 'node:buffer';

/** PostgreSQL's COPY text format read back: field unescaping, line splitting, UTF-8 runs. */

/** COPY text field -> the value PostgreSQL printed. */
export function unescapeCopy(field: Buffer, start: number, end: number): string | null {
  if (end - start === 2 && field[start] === 92 && field[start + 1] === 78) return null;
  let hasEscape = false;
  for (let i = start; i < end; i++)
    if (field[i] === 92) {
      hasEscape = true;
      break;
    }
  if (!hasEscape) return field.toString('utf8', start, end);
  const out: number[] = [];
  for (let i = start; i < end; i++) {
    const b = field[i];
    if (b !== 92 || i + 1 >= end) {
      out.push(b);
      continue;
    }
    const n = field[++i];
    switch (n) {
      case 110: out.push(10); break; // prettier-ignore
      case 116: out.push(9); break; // prettier-ignore
      case 114: out.push(13); break; // prettier-ignore
      case 98: out.push(8); break; // prettier-ignore
      case 102: out.push(12); break; // prettier-ignore
      case 118: out.push(11); break; // prettier-ignore
      default:
        if (n >= 48 && n <= 55) {
          let v = n - 48;
          for (let k = 0; k < 2 && i + 1 < end && field[i + 1] >= 48 && field[i + 1] <= 55; k++)
            v = v * 8 + (field[++i] - 48);
          out.push(v & 0xff);
        } else if (n === 120 && i + 1 < end && /[0-9a-fA-F]/.test(String.fromCharCode(field[i + 1]))) {
          let v = 0;
          for (let k = 0; k < 2 && i + 1 < end && /[0-9a-fA-F]/.test(String.fromCharCode(field[i + 1])); k++)
            v = v * 16 + parseInt(String.fromCharCode(field[++i]), 16);
          out.push(v);
        } else out.push(n);
    }
  }
  return Buffer.from(out).toString('utf8');
}

/** Splits one COPY text line (no trailing newline) into field texts. */
export function splitCopyLine(line: Buffer): Array<string | null> {
  const out: Array<string | null> = [];
  let start = 0;
  for (let i = 0; i <= line.length; i++) {
    if (i === line.length || line[i] === 9) {
      out.push(unescapeCopy(line, start, i));
      start = i + 1;
    }
  }
  return out;
}

/**
 * Lines cut from one COPY buffer lie one newline apart in memory; a run of such lines is valid
 * UTF-8 exactly when the bytes spanning it are (a newline is never part of a multi-byte
 * sequence), so one isUtf8 call checks the run. Returns the end of the run that starts at
 * `from` when it is valid UTF-8, else `from` (each line is then checked on its own).
 */
export function utf8Run(lines: readonly Buffer[], from: number): number {
  const first = lines[from];
  const ab = first.buffer;
  const second = lines[from + 1];
  if (!second || second.buffer !== ab || second.byteOffset !== first.byteOffset + first.length + 1)
    return from;
  const bytes = new Uint8Array(ab);
  let end = from + 1;
  let last = first;
  while (end < lines.length) {
    const next = lines[end];
    const gap = last.byteOffset + last.length;
    if (next.buffer !== ab || next.byteOffset !== gap + 1 || bytes[gap] !== 10) break;
    last = next;
    end++;
  }
  if (end - from < 2) return from;
  const span = new Uint8Array(ab, first.byteOffset, last.byteOffset + last.length - first.byteOffset);
  return isUtf8(span) ? end : from;
}

export function copyText(line: Buffer, start: number, end: number): string {
  return unescapeCopy(line, start, end) as string;
}
