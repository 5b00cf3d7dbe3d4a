import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

/** The last lines of a file, reading at most its last 256 KB. */
export function tailLines(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const len = Math.min(size, 256 * 1024);
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, size - len);
  } finally {
    closeSync(fd);
  }
  const all = buf.toString('utf8').replace(/\n$/, '').split('\n');
  return all.slice(-lines).join('\n');
}

/** The ERROR and FATAL entries (with their first stack line) logged since `offset`, as a section. */
export function errorLines(file: string, offset: number): string {
  if (!existsSync(file)) return '';
  const size = statSync(file).size;
  const len = Math.min(size - offset, 4 * 1024 * 1024);
  if (len <= 0) return '';
  const buf = Buffer.alloc(len);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, len, offset);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString('utf8').split('\n');
  const picked: string[] = [];
  for (let i = 0; i < lines.length && picked.length < 20; i++) {
    if (!/^\[[^\]]+\] (ERROR|FATAL) /.test(lines[i])) continue;
    picked.push(lines[i]);
    if (lines[i + 1] && !lines[i + 1].startsWith('[')) picked.push(lines[i + 1]);
  }
  return picked.length ? `--- errors logged by this start ---\n${picked.join('\n')}\n` : '';
}

export function tailSection(file: string, lines: number): string {
  return `--- last ${lines} lines of ${file} ---\n${tailLines(file, lines)}`;
}
