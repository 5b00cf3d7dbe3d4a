import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apicurioRuntime } from './apicurio-runtime';
import { installExitHook, type Jvm, spawnJvm, startReaper, tempDirs, within } from './kafka-jvm';
import { tailSection } from './log-tail';
import { waitFor } from './wait-for';

export interface StartApicurioOptions {
  /** HTTP port on 127.0.0.1; default 0: one the OS picks, read back from the log. */
  port?: number;
  /** Maximum heap; default 256 MB. */
  heapMb?: number;
  /** How long to wait for the API to answer; default 90 s. */
  readyTimeoutMs?: number;
  /** More configuration properties (`-D<key>=<value>`), e.g. `apicurio.ccompat.legacy-id-mode.enabled`. */
  config?: Record<string, string>;
}

/** A running Apicurio Registry (in-memory H2 storage: it starts empty and forgets on stop). */
export interface ApicurioRegistry {
  /** Its Confluent-compatible API, what a Confluent client takes as the registry URL. */
  readonly url: string;
  /** Its root: `/apis/registry/v3` (Apicurio's own API), `/health/ready` on the management port. */
  readonly baseUrl: string;
  readonly pid: number;
  readonly logFile: string;
  /** From spawning the JVM to the first answer of the Confluent-compatible API. */
  readonly startupMs: number;
  /** Stops the JVM (SIGTERM, SIGKILL after 20 s) and deletes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export const APICURIO_CCOMPAT_PATH = '/apis/ccompat/v7';

/**
 * Starts Apicurio Registry 3 (java/apicurio/pom.xml) on 127.0.0.1 with its default in-memory
 * storage and resolves once its Confluent-compatible API answers. The JVM is tied to this Node
 * process as startKafka's is (exit hook, parent-death signal, reaper) and never keeps it alive; a
 * failed start quotes the tail of its log.
 */
export async function startApicurio(options: StartApicurioOptions = {}): Promise<ApicurioRegistry> {
  const rt = apicurioRuntime();
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-apicurio-'));
  tempDirs.add(dir);
  const reaper = startReaper(dir);
  const logFile = join(dir, 'apicurio.log');
  const remove = () => {
    reaper.release();
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };
  const props: Record<string, string> = {
    'quarkus.http.host': '127.0.0.1',
    'quarkus.http.port': String(options.port ?? 0),
    // The management interface (health, metrics) is on by default on 0.0.0.0:9000.
    'quarkus.management.host': '127.0.0.1',
    'quarkus.management.port': '0',
    'java.io.tmpdir': dir,
    'apicurio.storage.snapshot.location': dir,
    ...options.config,
  };
  const args = [
    // A test registry: one compiler tier and the serial collector keep its CPU and memory small.
    '-XX:TieredStopAtLevel=1',
    '-XX:+UseSerialGC',
    `-Xmx${options.heapMb ?? 256}m`,
    ...Object.entries(props).map(([k, v]) => `-D${k}=${v}`),
    '-jar',
    join(rt.home, 'quarkus-run.jar'),
  ];
  const t0 = Date.now();
  let jvm: Jvm;
  try {
    jvm = spawnJvm(rt, args, dir, logFile, reaper);
  } catch (err) {
    remove();
    throw err;
  }
  const stop = async () => {
    if (!jvm.done) {
      jvm.child.ref();
      jvm.child.kill('SIGTERM');
      if ((await within(jvm.exit, 20_000)) === null) {
        jvm.child.kill('SIGKILL');
        await jvm.exit;
      }
    }
    remove();
  };
  try {
    const port = await waitFor(() => (jvm.done ? -1 : listeningPort(logFile)), {
      reason: `Apicurio Registry to log "Listening on: http://127.0.0.1:<port>" in ${logFile}`,
      timeout: options.readyTimeoutMs ?? 90_000,
      interval: 200,
    });
    const baseUrl = `http://127.0.0.1:${port}`;
    const url = `${baseUrl}${APICURIO_CCOMPAT_PATH}`;
    if (port !== null && port > 0) {
      await waitFor(async () => (jvm.done ? true : answers(await subjectsStatus(url))), {
        reason: `GET ${url}/subjects to answer 200`,
        timeout: Math.max(5_000, (options.readyTimeoutMs ?? 90_000) - (Date.now() - t0)),
        interval: 200,
      });
    }
    if (jvm.done) {
      throw new Error(`the JVM exited (${jvm.done.code ?? jvm.done.signal}) before its API answered`);
    }
    jvm.child.unref();
    return { url, baseUrl, pid: jvm.child.pid!, logFile, startupMs: Date.now() - t0, stop };
  } catch (err) {
    const tail = errorSection(logFile) + tailSection(logFile, 40);
    await stop();
    throw new Error(
      `Apicurio Registry (${join(rt.home, 'quarkus-run.jar')} on ${rt.java}) did not start: ${(err as Error).message}\n${tail}`,
    );
  }
}

/** The HTTP port Quarkus logged it listens on, or null before that line. */
function listeningPort(logFile: string): number | null {
  if (!existsSync(logFile) || statSync(logFile).size === 0) return null;
  const m = /Listening on: http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(logFile, 'utf8'));
  return m ? Number(m[1]) : null;
}

/** The log's ERROR lines (Quarkus' format: `<date> <time> ERROR [<logger>] ...`), as a section. */
function errorSection(logFile: string): string {
  if (!existsSync(logFile)) return '';
  const lines = readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => / ERROR \[/.test(l))
    .slice(0, 10);
  return lines.length ? `--- errors logged ---\n${lines.join('\n')}\n` : '';
}

/** waitFor treats null as not yet; a status other than 200 is not yet either. */
function answers(status: number | null): true | null {
  return status === 200 ? true : null;
}

async function subjectsStatus(url: string): Promise<number | null> {
  try {
    return (await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(5_000) })).status;
  } catch {
    return null;
  }
}
