import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadTaskSpec } from '@pgferry/core';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import {
  cliUsage,
  commandLineProblems,
  dockerfileProblems,
  dockerignore,
  parseDockerfile,
  type BuildContext,
} from './test/deploy-checks';

/**
 * The distributed deployment (docker-compose.yml, Dockerfile, deploy/task.yaml) checked offline:
 * no Docker engine runs here, so docker-compose validates the file and these tests hold it to
 * the image, the CLI's own --help and the task spec schema.
 */

const ROOT = join(__dirname, '..', '..', '..');
const MAIN = join(ROOT, 'apps', 'controller', 'dist', 'main.js');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: (string | { source?: string; target: string })[];
  user?: string;
}
const compose = parseYaml(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;

function argv(name: string): string[] {
  const cmd = services[name].command;
  if (!Array.isArray(cmd)) throw new Error(`docker-compose.yml: ${name}: give command as a list`);
  return cmd.map(String);
}
function env(name: string): Record<string, string> {
  const e = services[name].environment ?? {};
  const pairs = Array.isArray(e) ? e.map((kv) => kv.split(/=(.*)/s, 2)) : Object.entries(e);
  return Object.fromEntries(pairs.map(([k, v]) => [k, String(v ?? '')]));
}
function mounts(name: string): { source?: string; target: string }[] {
  return (services[name].volumes ?? []).map((v) => {
    if (typeof v !== 'string') return v;
    const [source, target] = v.split(':');
    return { source, target };
  });
}
const option = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
const KAFKA_VARIABLES = ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL'];
/** The pgferry services: those running the image the compose file builds. */
const pgferry = Object.keys(services).filter((n) => services[n].build !== undefined);
const byCommand = (cmd: string) => pgferry.filter((n) => argv(n)[0] === cmd);
const finalUser = () => {
  const stages = parseDockerfile(read('Dockerfile'));
  return stages[stages.length - 1].instructions
    .filter((i) => i.keyword === 'USER')
    .pop()
    ?.args.trim();
};

describe('docker-compose.yml', () => {
  it('validates with docker-compose config -q', () => {
    const run = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    if ((run.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
      throw new Error('docker-compose is not installed: apt-get install docker-compose (bash .ci/run does)');
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('runs one registry, one controller, one capture and exactly two appliers, all from ./Dockerfile', () => {
    expect(pgferry.map((n) => argv(n)[0]).sort()).toEqual([
      'applier',
      'applier',
      'capture',
      'migrate',
      'registry',
    ]);
    const images = new Set(pgferry.map((n) => services[n].image));
    expect(images.size).toBe(1);
    for (const name of pgferry) {
      const build = services[name].build;
      const context = typeof build === 'string' ? build : build?.context;
      const dockerfile = typeof build === 'string' ? undefined : build?.dockerfile;
      expect({ name, context, dockerfile: dockerfile ?? 'Dockerfile' }).toEqual({
        name,
        context: '.',
        dockerfile: 'Dockerfile',
      });
    }
    const others = Object.keys(services).filter((n) => !pgferry.includes(n));
    for (const name of others)
      expect({ name, image: services[name].image }).not.toEqual({ name, image: [...images][0] });
  });

  it("runs the pgferry services as the Dockerfile's non-root user", () => {
    const user = finalUser();
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
    for (const name of pgferry)
      expect({ name, user: services[name].user }).toEqual({ name, user: undefined });
  });

  it("gives the source wal_level=logical, on the PostgreSQL major of the image's client tools", () => {
    expect(argv('source')).toEqual(expect.arrayContaining(['-c', 'wal_level=logical']));
    const client = /postgresql-client-(\d+)/.exec(read('Dockerfile'))?.[1];
    for (const name of ['source', 'destination'])
      expect({ name, major: /^postgres:(\d+)/.exec(services[name].image ?? '')?.[1] }).toEqual({
        name,
        major: client,
      });
  });

  it('points the controller, capture and appliers at the compose Kafka and registry', () => {
    const kafka = env('kafka').KAFKA_ADVERTISED_LISTENERS.match(/INTERNAL:\/\/([^,]+)/)?.[1];
    const [registry] = byCommand('registry');
    const registryUrl = `http://${registry}:${option(argv(registry), '--port')}`;
    expect(option(argv(registry), '--kafka')).toBe(kafka);
    for (const name of [...byCommand('migrate'), ...byCommand('capture'), ...byCommand('applier')]) {
      const e = env(name);
      expect({ name, brokers: e.KAFKA_BROKERS, registry: e.SCHEMA_REGISTRY_URL }).toEqual({
        name,
        brokers: kafka,
        registry: registryUrl,
      });
    }
  });

  it('runs the command lines of the deployment: migrate with a work dir on a volume, registry on all addresses', () => {
    const spec = '/etc/pgferry/task.yaml';
    const [controller] = byCommand('migrate');
    expect(argv(controller)).toEqual(['migrate', '--spec', spec, '--work-dir', '/var/lib/pgferry']);
    expect(mounts(controller).map((m) => m.target)).toContain('/var/lib/pgferry');
    for (const name of [...byCommand('capture'), ...byCommand('applier')])
      expect(argv(name)).toEqual([argv(name)[0], '--spec', spec]);
    const [registry] = byCommand('registry');
    expect(argv(registry)).toEqual([
      'registry',
      '--kafka',
      'kafka:29092',
      '--port',
      '8081',
      '--host',
      '0.0.0.0',
    ]);
  });

  // Each pgferry service's command line judged by the built CLI's own --help (commandLineProblems),
  // and every Kafka or registry variable it is given read by that command (`(env: NAME)`).
  it.each(pgferry)('%s: its command line and variables fit the CLI', (name) => {
    const reads = cliUsage(MAIN, argv(name)[0]).env;
    const unread = Object.keys(env(name)).filter((k) => KAFKA_VARIABLES.includes(k) && !reads.has(k));
    expect({ problems: commandLineProblems(MAIN, name, argv(name)), unread }).toEqual({
      problems: [],
      unread: [],
    });
  });

  it('mounts deploy/task.yaml: a valid spec with the external stream, naming the compose servers and passwords', () => {
    const withSpec = [...byCommand('migrate'), ...byCommand('capture'), ...byCommand('applier')];
    for (const name of withSpec) {
      const target = option(argv(name), '--spec');
      expect({ name, source: mounts(name).find((m) => m.target === target)?.source }).toEqual({
        name,
        source: './deploy/task.yaml',
      });
    }
    const spec = loadTaskSpec(join(ROOT, 'deploy', 'task.yaml'));
    expect(spec.migrationTypes.incremental).toBe(true);
    expect(spec.options.stream).toEqual({ capture: 'external', appliers: 0 });
    expect(spec.options.consistency).toBe('per-key');
    for (const side of ['source', 'destination'] as const) {
      const url = new URL(spec[side].url!);
      const e = env(side);
      expect({ side, host: url.hostname, password: url.password, db: url.pathname.slice(1) }).toEqual({
        side,
        host: side,
        password: e.POSTGRES_PASSWORD,
        db: e.POSTGRES_DB,
      });
    }
  });

  describe('with the sample data on PostgreSQL', () => {
    let source: PgCluster | undefined;
    let destination: PgCluster | undefined;
    const dir = mkdtempSync(join(tmpdir(), 'pgferry-deploy-'));
    afterAll(async () => {
      await Promise.all([source?.stop(), destination?.stop()]);
      rmSync(dir, { recursive: true, force: true });
    });

    it("deploy/source-init.sql loads and the compose task's precheck passes on it", async () => {
      [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
      const srcUrl = source.url('shop');
      await source.query('CREATE DATABASE shop');
      await destination.query('CREATE DATABASE shop');
      const client = await source.connect('shop');
      try {
        await client.query(read('deploy/source-init.sql'));
      } finally {
        await client.end();
      }
      const spec = parseYaml(read('deploy/task.yaml')) as Record<string, unknown>;
      const file = join(dir, 'task.yaml');
      writeFileSync(
        file,
        JSON.stringify({ ...spec, source: { url: srcUrl }, destination: { url: destination.url('shop') } }),
      );
      const run = spawnSync(process.execPath, [MAIN, 'check', '--spec', file], { encoding: 'utf8' });
      expect({ status: run.status, out: run.stdout + run.stderr }).toEqual({
        status: 0,
        out: expect.stringContaining('passed  selection                 2 tables selected on the source'),
      });
    });
  });
});

describe('Dockerfile', () => {
  const ignored = dockerignore(read('.dockerignore'));
  const repo: BuildContext = { exists: (p) => existsSync(join(ROOT, p)), ignored };

  it('passes the offline checks: stages, COPY sources, non-root final stage without build tools, entry point', () => {
    expect(dockerfileProblems(read('Dockerfile'), repo)).toEqual([]);
  });

  it('keeps local builds, installs and the task spec with its credentials out of the build context', () => {
    const out = [
      'node_modules',
      'libs/core/node_modules/x',
      'libs/core/dist/index.js',
      'deploy/task.yaml',
      '.git',
    ];
    const kept = [
      'libs/core/src/spec.ts',
      'apps/controller/package.json',
      'package-lock.json',
      'scripts/bin-mode.js',
    ];
    expect(out.filter((p) => !ignored(p))).toEqual([]);
    expect(kept.filter(ignored)).toEqual([]);
  });

  it('finds what it must refuse', () => {
    const bad = [
      'FROM node:latest',
      'WORKDIR /src',
      'COPY no-such-file ./',
      'COPY node_modules node_modules',
      'COPY libs/*/package.json ./',
      'FROM node:20-bookworm-slim',
      'WORKDIR /app',
      'RUN apt-get update \\',
      '  && apt-get install -y build-essential',
      'COPY --from=builder /src/apps apps',
      'COPY apps apps',
      'USER root',
      'ENTRYPOINT node apps/controller/dist/main.js',
    ].join('\n');
    const ctx: BuildContext = { exists: (p) => p !== 'no-such-file', ignored: (p) => p === 'node_modules' };
    expect(dockerfileProblems(bad, ctx)).toEqual([
      'Dockerfile: FROM node:latest: pin a version tag',
      'Dockerfile line 3: COPY no-such-file: not in the build context',
      'Dockerfile line 4: COPY node_modules: .dockerignore leaves it out',
      'Dockerfile line 5: COPY libs/*/package.json: name paths, not globs',
      'Dockerfile line 10: COPY --from=builder is not an earlier stage',
      'Dockerfile line 12: the final stage runs as root; USER an unprivileged user',
      'Dockerfile line 8: the final stage runs or installs build-essential; build in an earlier stage',
      "Dockerfile line 11: the final stage copies from the build context; copy a stage's output",
      'Dockerfile: the final stage needs an exec-form ENTRYPOINT (signals reach the process)',
    ]);
    expect(dockerfileProblems('FROM node:20\nCMD ["node"]', ctx)).toEqual([
      'Dockerfile: one stage; build in a stage of its own and copy its output (multi-stage)',
      'Dockerfile: the final stage sets no USER, so it runs as root',
      'Dockerfile: the final stage needs an exec-form ENTRYPOINT (signals reach the process)',
    ]);
  });

  it('judges command lines by the CLI: unknown commands, options and missing values are named', () => {
    expect(
      commandLineProblems(MAIN, 'x', ['migrate', '--spec', '--work-dir', 'd', '--bogus', 'extra']),
    ).toEqual([
      'x: pgferry migrate --spec needs a value',
      'x: pgferry migrate has no option --bogus (see pgferry migrate --help)',
      'x: pgferry migrate takes no argument "extra" here',
    ]);
    expect(commandLineProblems(MAIN, 'x', ['migrate', '--no-verify=1'])).toEqual([
      'x: pgferry migrate --no-verify takes no value',
    ]);
    expect(commandLineProblems(MAIN, 'y', ['frobnicate'])[0]).toMatch(
      /^y: pgferry has no command "frobnicate" \(it has check, /,
    );
  });
});
