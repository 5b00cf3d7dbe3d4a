import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';

/**
 * Where Apache Kafka's jars and the JVM come from for the test broker (`startKafka`): the classpath
 * of `java/kafka/pom.xml` as resolved by Maven from the local repository (~/.m2), and the `java`
 * of JAVA_HOME or PATH. Nothing is downloaded by URL: Maven fetches from its repository only when
 * the offline resolution fails.
 */
export interface KafkaRuntime {
  /** The `java` executable (JDK 17 or newer). */
  readonly java: string;
  /** The broker's classpath, `:`-separated jar paths. */
  readonly classpath: string;
  /** The log4j2 configuration the broker logs with (`-Dlog4j2.configurationFile`). */
  readonly log4jConfig: string;
  /** Where caches live: the classpath file and the JVM's class-data-sharing archive. */
  readonly cacheDir: string;
  /** A key for the class-data-sharing archive: changes with the classpath and the JVM. */
  readonly jvmKey: string;
}

const HINT = 'install a JDK 17 and Maven, or run .ci/run';
const MIN_JAVA = 17;

let cached: KafkaRuntime | undefined;

/** The repository's root, found from this file in `libs/testing/src` or `libs/testing/dist`. */
export function repoRoot(): string {
  const root = resolve(__dirname, '..', '..', '..');
  if (!existsSync(join(root, 'java', 'kafka', 'pom.xml'))) {
    throw new Error(
      `java/kafka/pom.xml not found under ${root}: @pgferry/testing must run from the repository`,
    );
  }
  return root;
}

/**
 * Resolves the runtime once per process. The classpath is cached in
 * `node_modules/.cache/pgferry/kafka-classpath-<hash of the pom>.txt` and resolved again when the
 * pom changes or a jar it names is gone. Throws, naming what is missing and how to get it.
 */
export function kafkaRuntime(): KafkaRuntime {
  if (cached) return cached;
  const root = repoRoot();
  const pom = join(root, 'java', 'kafka', 'pom.xml');
  const cacheDir = join(root, 'node_modules', '.cache', 'pgferry');
  mkdirSync(cacheDir, { recursive: true });
  const java = findJava();
  const pomHash = createHash('sha256').update(readFileSync(pom)).digest('hex').slice(0, 16);
  const cpFile = join(cacheDir, `kafka-classpath-${pomHash}.txt`);
  let classpath = readClasspath(cpFile);
  if (classpath === null) {
    resolveClasspath(pom, cpFile);
    classpath = readClasspath(cpFile);
    if (classpath === null) throw new Error(`Maven wrote no usable classpath for ${pom} to ${cpFile}`);
  }
  const jvmKey = createHash('sha256')
    .update(classpath)
    .update('\0')
    .update(jvmIdentity(java))
    .digest('hex')
    .slice(0, 16);
  cached = { java, classpath, log4jConfig: join(root, 'java', 'kafka', 'log4j2.xml'), cacheDir, jvmKey };
  return cached;
}

/** The cached classpath when every jar in it still exists, else null. */
function readClasspath(file: string): string | null {
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8').trim();
  const jars = text.split(delimiter).filter(Boolean);
  if (jars.length === 0 || !jars.every((j) => existsSync(j))) return null;
  return jars.join(delimiter);
}

/** `mvn dependency:build-classpath`, offline first (the usual case once ~/.m2 holds the jars). */
function resolveClasspath(pom: string, cpFile: string): void {
  const mvn = onPath('mvn');
  if (mvn === null)
    throw new Error(`Maven (mvn) is not on PATH, needed once to resolve Kafka's jars: ${HINT}`);
  const tmp = `${cpFile}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const args = (offline: boolean) => [
    '-q',
    '-B',
    '-Dstyle.color=never',
    ...(offline ? ['-o'] : []),
    '-f',
    pom,
    'dependency:build-classpath',
    `-Dmdep.outputFile=${tmp}`,
  ];
  let out = '';
  for (const offline of [true, false]) {
    const r = spawnSync(mvn, args(offline), { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
    if (r.status === 0 && existsSync(tmp)) {
      // Another process may resolve at the same time; rename is atomic, the last one wins.
      renameSync(tmp, cpFile);
      return;
    }
  }
  rmSync(tmp, { force: true });
  const tail = out.trim().split('\n').slice(-15).join('\n');
  throw new Error(`mvn could not resolve the Kafka jars of ${pom} (offline, then online):\n${tail}`);
}

/** JAVA_HOME's java, else the one on PATH; checked to be Java 17 or newer. */
function findJava(): string {
  const home = process.env.JAVA_HOME;
  const java = home && existsSync(join(home, 'bin', 'java')) ? join(home, 'bin', 'java') : onPath('java');
  if (java === null) throw new Error(`no java on PATH or in JAVA_HOME, needed to run Apache Kafka: ${HINT}`);
  const r = spawnSync(java, ['-version'], { encoding: 'utf8' });
  const text = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(text);
  const major = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : NaN;
  if (!(major >= MIN_JAVA)) {
    throw new Error(
      `${java} is not Java ${MIN_JAVA} or newer (${text.trim().split('\n')[0] ?? r.error}): ${HINT}`,
    );
  }
  return java;
}

/** Identifies the JVM build: its real path and its libjvm's size and time (they change on upgrade). */
function jvmIdentity(java: string): string {
  const real = realpathSync(java);
  const home = dirname(dirname(real));
  const lib = join(home, 'lib', 'server', 'libjvm.so');
  const file = existsSync(lib) ? lib : real;
  const s = statSync(file);
  return `${real}:${file}:${s.size}:${s.mtimeMs}`;
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not in this directory
    }
  }
  return null;
}
