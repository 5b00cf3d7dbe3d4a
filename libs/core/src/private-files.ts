import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';

/**
 * pgferry's files on disk hold secrets (child configurations) and copies of the data (the
 * embedded broker's logs, schema dumps): its directories are 0700 and its files 0600, so only
 * the user running pgferry (and root) can read them.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` (and missing parents) 0700, and sets an existing one to 0700 (one an earlier
 * version left 0755). Idempotent.
 */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Writes `file` 0600, also when it existed with a wider mode. */
export function writePrivateFile(file: string, data: string | Uint8Array): void {
  writeFileSync(file, data, { mode: PRIVATE_FILE_MODE });
  chmodSync(file, PRIVATE_FILE_MODE);
}
