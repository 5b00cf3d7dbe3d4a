import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const MAIN = join(__dirname, '..', '..', '..', '..', 'apps', 'controller', 'dist', 'main.js');

/** `pgferry broker` as a child process (built code), for kill -9 tests. */
export async function spawnBroker(
  dataDir: string,
  port = 0,
  extra: string[] = [],
): Promise<{ child: ChildProcess; port: number; registryUrl: string }> {
  const child = spawn(
    process.execPath,
    [MAIN, 'broker', '--data-dir', dataDir, '--port', String(port), '--registry-port', '0', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start within 20s: ${err}`)), 20_000);
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /kafka 127\.0\.0\.1:(\d+), schema registry (\S+),/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), registryUrl: m[2] });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code}: ${err}`));
    });
  });
}

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
