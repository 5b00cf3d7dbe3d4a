import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * A Python virtualenv at `dir` with exactly the packages of `requirements` (a pip requirements
 * file), created with `python3 -m venv` when missing or when the file changed since it was made
 * (a stamp file holds the file's hash). Returns the venv's python. Fails with what to install
 * when python3 or its venv module is missing. Safe to call from every test: a ready venv costs
 * one file read.
 */
export async function pythonVenv(requirements: string, dir: string): Promise<string> {
  const python = join(dir, 'bin', 'python');
  const stamp = join(dir, '.requirements-sha256');
  const want = createHash('sha256').update(readFileSync(requirements)).digest('hex');
  if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) return python;
  rmSync(dir, { recursive: true, force: true });
  try {
    await execFileP('python3', ['-m', 'venv', dir]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `python3 -m venv ${dir} failed (${(err as Error).message.trim()}): install Python 3.11+ with its venv module (Debian: apt-get install python3-venv)`,
    );
  }
  try {
    await execFileP(
      python,
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`pip install -r ${requirements} into ${dir} failed: ${(e.stderr || e.message).trim()}`);
  }
  writeFileSync(stamp, want);
  return python;
}
