import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CDS_QUIET } from './kafka-config';
import type { KafkaRuntime } from './kafka-runtime';

/** How a JVM ended: an exit code, or the signal that killed it. */
export interface KafkaExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One spawned JVM; `done` is set once `exit` has resolved. */
export interface Jvm {
  child: ChildProcess;
  exit: Promise<KafkaExit>;
  done: KafkaExit | null;
}

/**
 * Cleans up after a Node process that dies or exits without stopping its broker, where exit hooks
 * cannot help: under jest, `process` is a sandbox copy whose 'exit' listeners never run, and no
 * hook runs on SIGKILL. A small shell, in its own process group, holds the read end of a pipe from
 * this process; when the pipe closes without `release()`, it kills the JVM it was last told of
 * (waiting up to 10 s for it to go) and deletes the temp data dir.
 */
export interface Reaper {
  /** The JVM now running (null: none). */
  watch(pid: number | null): void;
  /** The broker was removed: the shell exits and does nothing. Idempotent. */
  release(): void;
}

const REAPER_SH = `
dir=$1; p=-
while read -r cmd arg; do
  case $cmd in
    pid) p=$arg ;;
    done) exit 0 ;;
  esac
done
if [ "$p" != "-" ]; then
  kill -KILL "$p" 2>/dev/null
  i=0
  while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
fi
if [ -n "$dir" ]; then rm -rf "$dir"; fi
`;

/** Starts the reaper of one broker; `tempDir` is deleted by it, '' for a data dir the caller owns. */
export function startReaper(tempDir: string): Reaper {
  const child = spawn('/bin/sh', ['-c', REAPER_SH, 'pgferry-kafka-reaper', tempDir], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  child.on('error', () => undefined);
  child.stdin!.on('error', () => undefined);
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  let released = false;
  const send = (line: string) => {
    if (!released && child.stdin!.writable) child.stdin!.write(`${line}\n`);
  };
  return {
    watch: (pid) => send(`pid ${pid ?? '-'}`),
    release: () => {
      send('done');
      released = true;
      child.stdin!.end();
    },
  };
}

/** Every JVM and temp dir this process started; the exit hook ends and removes them. */
const live = new Map<number, () => void>();
export const tempDirs = new Set<string>();
let hooked = false;

export function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  // Synchronous by nature: SIGKILL is all an exiting process can still do. Where the process dies
  // without running this (a signal, SIGKILL), setpriv's parent-death signal kills the JVM instead.
  process.on('exit', () => {
    for (const kill of live.values()) kill();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Points log4j2 at java/kafka/log4j2.xml and the log file it appends to. */
export function logFlags(rt: KafkaRuntime, logFile: string): string[] {
  return [`-Dlog4j2.configurationFile=${rt.log4jConfig}`, `-Dkafka.logs.file=${logFile}`];
}

/**
 * Class-data sharing: with an archive for this classpath and JVM, use it; without one, a broker
 * start ('make') asks the JVM to write one at exit, which keepArchive() moves into place after a
 * clean exit of a broker that was ready. The formatter ('use') only uses an existing one.
 */
export function cdsFlags(rt: KafkaRuntime, enabled: boolean, mode: 'use' | 'make'): string[] {
  if (!enabled) return [];
  const archive = archivePath(rt);
  if (existsSync(archive)) return [`-XX:SharedArchiveFile=${archive}`, ...CDS_QUIET];
  if (mode === 'use') return [];
  const tmp = `${archive}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  return [`-XX:ArchiveClassesAtExit=${tmp}`, ...CDS_QUIET];
}

function archivePath(rt: KafkaRuntime): string {
  return join(rt.cacheDir, `kafka-cds-${rt.jvmKey}.jsa`);
}

export function keepArchive(tmp: string, keep: boolean, rt: KafkaRuntime): void {
  try {
    if (keep && statSync(tmp).size > 0 && !existsSync(archivePath(rt))) renameSync(tmp, archivePath(rt));
  } catch {
    // No archive written (the JVM was killed): the next clean stop makes one.
  }
  rmSync(tmp, { force: true });
}

/**
 * Spawns the JVM with its output appended to the log file. On Linux it goes through setpriv
 * --pdeathsig KILL (util-linux), so the kernel kills it if this process dies without exit hooks.
 * The caller unref()s a broker once it is ready, so one left running never keeps Node alive.
 */
export function spawnJvm(
  rt: Pick<KafkaRuntime, 'java'>,
  args: string[],
  cwd: string,
  logFile: string,
  reaper: Reaper,
): Jvm {
  const fd = openSync(logFile, 'a');
  const setpriv = process.platform === 'linux' && existsSync('/usr/bin/setpriv') ? '/usr/bin/setpriv' : null;
  const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', rt.java, ...args]] : [rt.java, args];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { cwd, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const jvm: Jvm = { child, done: null, exit: Promise.resolve({ code: null, signal: null }) };
  jvm.exit = new Promise<KafkaExit>((resolveExit) => {
    const finish = (e: KafkaExit) => {
      if (jvm.done) return;
      jvm.done = e;
      if (child.pid !== undefined) live.delete(child.pid);
      reaper.watch(null);
      resolveExit(e);
    };
    child.once('exit', (code, signal) => finish({ code, signal }));
    child.once('error', (err) => {
      writeFileSync(logFile, `\nspawn ${cmd} failed: ${err.message}\n`, { flag: 'a' });
      finish({ code: null, signal: null });
    });
  });
  if (child.pid !== undefined) {
    const pid = child.pid;
    reaper.watch(pid);
    live.set(pid, () => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
  }
  return jvm;
}

/** `p`'s value, or null when it has not settled within `ms`. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
