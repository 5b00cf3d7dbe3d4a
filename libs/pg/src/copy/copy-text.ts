/**
 * PostgreSQL COPY text format, the applier's bulk path: NULL is \N, and backslash, newline,
 * carriage return and tab are escaped. Values are PostgreSQL text forms, so the server parses
 * them exactly as it would the literal.
 */
export function copyField(value: string | null): string {
  if (value === null) return '\\N';
  let needs = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 92 || c === 10 || c === 13 || c === 9) {
      needs = true;
      break;
    }
  }
  if (!needs) return value;
  return value.replace(/[\\\n\r\t]/g, (ch) =>
    ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t',
  );
}

export function copyLine(values: ReadonlyArray<string | null>): string {
  let out = '';
  for (let i = 0; i < values.length; i++) out += (i ? '\t' : '') + copyField(values[i]);
  return `${out}\n`;
}

/** Rows as COPY text, in pieces of about 1 MB, so a big batch is never one huge string. */
export function copyChunks(rows: ReadonlyArray<ReadonlyArray<string | null>>): string[] {
  const chunks: string[] = [];
  let chunk = '';
  for (const r of rows) {
    chunk += copyLine(r);
    if (chunk.length > 1 << 20) {
      chunks.push(chunk);
      chunk = '';
    }
  }
  if (chunk) chunks.push(chunk);
  return chunks;
}
