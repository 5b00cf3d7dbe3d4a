import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';

/** A writable that keeps what is written to it, for commands that print to an `out` stream. */
export function captureOutput(): { out: Writable; text: () => string } {
  let text = '';
  const out = new Writable({
    write(chunk, _e, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { out, text: () => text };
}

/** The pid in a pid file, or null when the file is missing or empty. */
export function readPidFile(file: string): number | null {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid exists (signal 0 delivers nothing). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
