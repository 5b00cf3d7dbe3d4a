import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { posix } from 'node:path';

/**
 * Offline checks of the deployment files (Dockerfile, .dockerignore, docker-compose.yml) for
 * deploy.int-spec.ts: a line-based Dockerfile parser, Docker's .dockerignore matching, and the
 * pgferry CLI's own `--help` output as the reference for the command lines the compose file runs.
 */

/** One instruction: keyword upper-cased, its arguments with continuations joined, its first line. */
export interface DockerInstruction {
  keyword: string;
  args: string;
  line: number;
}

export interface DockerStage {
  image: string;
  name?: string;
  instructions: DockerInstruction[];
}

/**
 * Splits a Dockerfile into stages (one per FROM). Comment and empty lines are dropped, also
 * inside a continuation (Docker does the same); a line ending in `\` continues on the next.
 * Throws, naming the line, on an instruction before the first FROM other than ARG.
 */
export function parseDockerfile(text: string): DockerStage[] {
  const instructions: DockerInstruction[] = [];
  let pending: { parts: string[]; line: number } | null = null;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const trimmed = lines[i].trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    pending ??= { parts: [], line: i + 1 };
    pending.parts.push(body);
    if (continued) continue;
    const m = /^(\S+)\s*(.*)$/.exec(pending.parts.join(' '))!;
    instructions.push({ keyword: m[1].toUpperCase(), args: m[2], line: pending.line });
    pending = null;
  }
  if (pending) throw new Error(`Dockerfile: the instruction on line ${pending.line} ends in a "\\"`);
  const stages: DockerStage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const w = ins.args.split(/\s+/).filter((x) => !x.startsWith('--'));
      const as = w.length >= 3 && w[1].toLowerCase() === 'as' ? w[2] : undefined;
      stages.push({ image: w[0], ...(as ? { name: as } : {}), instructions: [] });
    } else if (stages.length) stages[stages.length - 1].instructions.push(ins);
    else if (ins.keyword !== 'ARG')
      throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before the first FROM`);
  }
  return stages;
}

/** The exec (JSON) form's argv, or null for the shell form. */
export function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null;
  const argv: unknown = JSON.parse(args);
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string'))
    throw new Error(`not an exec form (a JSON array of strings): ${args}`);
  return argv as string[];
}

export interface CopySpec {
  /** The stage (or image) of --from, else undefined: the build context. */
  from?: string;
  sources: string[];
  dest: string;
}

/** COPY/ADD arguments: flags (--from, --chown, --chmod, --link), sources, destination. */
export function copySpec(args: string): CopySpec {
  const words = execForm(args) ?? args.split(/\s+/).filter(Boolean);
  let from: string | undefined;
  const rest: string[] = [];
  for (const w of words) {
    if (rest.length === 0 && w.startsWith('--')) {
      if (w.startsWith('--from=')) from = w.slice('--from='.length);
    } else rest.push(w);
  }
  if (rest.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
  return { ...(from ? { from } : {}), sources: rest.slice(0, -1), dest: rest[rest.length - 1] };
}

/** The build context as the checks see it; paths are relative and /-separated. */
export interface BuildContext {
  /** Whether the path exists in the repository (after `npm run build`). */
  exists(path: string): boolean;
  /** Whether .dockerignore leaves it out of the build context. */
  ignored(path: string): boolean;
}

const BUILD_COMMANDS = /\b(npm (?:ci|install|i|run build)|npx|tsc|yarn|pnpm|node-gyp)\b/;
const BUILD_PACKAGES = /\b(build-essential|gcc|g\+\+|make|clang|python3|git)\b/;

/** The stage's WORKDIR in effect before instruction `index` (Docker's default is /). */
function workdirAt(stage: DockerStage, index: number): string {
  let dir = '/';
  for (const ins of stage.instructions.slice(0, index))
    if (ins.keyword === 'WORKDIR') dir = posix.resolve(dir, ins.args.trim());
  return dir;
}

/**
 * Everything the offline checks find wrong with a Dockerfile, one line per problem: fewer than
 * two stages; an unpinned base image; a context COPY source that is missing, a glob, or left out
 * by .dockerignore; a COPY --from naming no earlier stage; a final stage that runs as root, builds
 * or installs build tools, copies from the context, or has no exec-form ENTRYPOINT; an entry
 * point script the build stage does not produce from the context. Empty when none.
 */
export function dockerfileProblems(text: string, ctx: BuildContext): string[] {
  const stages = parseDockerfile(text);
  const problems: string[] = [];
  const at = (ins: DockerInstruction) => `Dockerfile line ${ins.line}`;
  if (stages.length < 2)
    problems.push('Dockerfile: one stage; build in a stage of its own and copy its output (multi-stage)');
  const named = new Map<string, DockerStage>();
  for (const stage of stages) {
    if (!named.has(stage.image) && (!/:[^/:]+$/.test(stage.image) || stage.image.endsWith(':latest')))
      problems.push(`Dockerfile: FROM ${stage.image}: pin a version tag`);
    for (const ins of stage.instructions) {
      if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') continue;
      const copy = copySpec(ins.args);
      if (copy.from !== undefined) {
        if (!named.has(copy.from))
          problems.push(`${at(ins)}: COPY --from=${copy.from} is not an earlier stage`);
        continue;
      }
      for (const src of copy.sources) {
        const rel = posix.normalize(src).replace(/\/+$/, '');
        if (/[*?[]/.test(rel)) problems.push(`${at(ins)}: COPY ${src}: name paths, not globs`);
        else if (!ctx.exists(rel)) problems.push(`${at(ins)}: COPY ${src}: not in the build context`);
        else if (ctx.ignored(rel)) problems.push(`${at(ins)}: COPY ${src}: .dockerignore leaves it out`);
      }
    }
    if (stage.name) named.set(stage.name, stage);
  }
  const final = stages[stages.length - 1];
  if (!final) return problems;
  const user = final.instructions.filter((i) => i.keyword === 'USER').pop();
  const name = user?.args.trim().split(':')[0];
  if (!name) problems.push('Dockerfile: the final stage sets no USER, so it runs as root');
  else if (name === 'root' || name === '0')
    problems.push(`${at(user!)}: the final stage runs as ${name}; USER an unprivileged user`);
  for (const ins of final.instructions) {
    const tool =
      ins.keyword === 'RUN' ? (BUILD_COMMANDS.exec(ins.args) ?? BUILD_PACKAGES.exec(ins.args)) : null;
    if (tool)
      problems.push(`${at(ins)}: the final stage runs or installs ${tool[1]}; build in an earlier stage`);
    if ((ins.keyword === 'COPY' || ins.keyword === 'ADD') && copySpec(ins.args).from === undefined)
      problems.push(`${at(ins)}: the final stage copies from the build context; copy a stage's output`);
  }
  const entry = final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').pop();
  const argv = entry ? execForm(entry.args) : null;
  if (!argv)
    problems.push('Dockerfile: the final stage needs an exec-form ENTRYPOINT (signals reach the process)');
  const script = argv?.find((a) => a.endsWith('.js'));
  if (entry && script) problems.push(...entryProblems(final, named, script, ctx));
  return problems;
}

/** Follows the entry script back through COPY --from to the context path the build stage compiles. */
function entryProblems(
  final: DockerStage,
  named: Map<string, DockerStage>,
  script: string,
  ctx: BuildContext,
): string[] {
  const file = posix.resolve(workdirAt(final, final.instructions.length), script);
  const within = (path: string, dir: string) =>
    path === dir || path.startsWith(`${dir}/`) ? path.slice(dir.length) : null;
  for (let i = final.instructions.length - 1; i >= 0; i--) {
    const ins = final.instructions[i];
    if (ins.keyword !== 'COPY') continue;
    const copy = copySpec(ins.args);
    const rest = within(file, posix.resolve(workdirAt(final, i), copy.dest));
    const from = copy.from === undefined ? undefined : named.get(copy.from);
    if (rest === null || !from || copy.sources.length !== 1) continue;
    const built = posix.resolve(workdirAt(from, from.instructions.length), copy.sources[0]) + rest;
    for (let j = from.instructions.length - 1; j >= 0; j--) {
      const c = from.instructions[j];
      if (c.keyword !== 'COPY') continue;
      const spec = copySpec(c.args);
      const tail = within(built, posix.resolve(workdirAt(from, j), spec.dest));
      if (tail === null || spec.from !== undefined || spec.sources.length !== 1) continue;
      const path = posix.normalize(spec.sources[0] + tail);
      return ctx.exists(path)
        ? []
        : [`Dockerfile: the entry point ${file} would be ${path}, which npm run build does not produce`];
    }
    return [
      `Dockerfile: the entry point ${file} is ${built} of stage ${copy.from}, which no COPY from the context puts there`,
    ];
  }
  return [`Dockerfile: the entry point ${file} is not copied from a build stage`];
}

/** A .dockerignore glob as a regular expression over /-separated context paths. */
function ignoreRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Docker's .dockerignore semantics: the last rule matching a path or one of its parent
 * directories decides; `!` re-includes. Returns whether a context path is left out of the build.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const include = l.startsWith('!');
      const pattern = (include ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { include, re: ignoreRegExp(pattern) };
    });
  return (path) => {
    const parts = path.replace(/^\.?\/+/, '').split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) excluded = !r.include;
    return excluded;
  };
}

function help(main: string, args: string[]): string {
  if (!existsSync(main)) throw new Error(`${main} does not exist: run npm run build first`);
  const run = spawnSync(process.execPath, [main, ...args, '--help'], { encoding: 'utf8' });
  if (run.status !== 0)
    throw new Error(`pgferry ${args.join(' ')} --help exited ${run.status}: ${run.stderr}`);
  return run.stdout;
}

/** The subcommands `pgferry --help` lists. */
export function cliCommands(main: string): Set<string> {
  const lines = help(main, []).split('\n');
  const start = lines.indexOf('Commands:');
  const names = lines
    .slice(start + 1)
    .map((l) => /^ {2}([a-z][a-z0-9-]*)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== 'help');
  return new Set(names);
}

export interface CliUsage {
  /** Every option of the subcommand: true when it takes a value (`--spec <file>`). */
  flags: Map<string, boolean>;
  /** Environment variables the subcommand reads in place of an option (`(env: NAME)`). */
  env: Set<string>;
}

/** A subcommand's options and environment variables, from `pgferry <command> --help`. */
export function cliUsage(main: string, command: string): CliUsage {
  const text = help(main, [command]);
  const flags = new Map<string, boolean>();
  for (const line of text.split('\n')) {
    const m = /^ {2}(?:-\w, )?(--[a-z0-9-]+)( [<[])?/.exec(line);
    if (m) flags.set(m[1], m[2] !== undefined);
  }
  const env = new Set([...text.replace(/\s+/g, ' ').matchAll(/\(env: ([A-Z0-9_]+)\)/g)].map((m) => m[1]));
  return { flags, env };
}

/**
 * What is wrong with running `pgferry <argv>` as `label` (a compose service), judged by the
 * CLI's own help: an unknown subcommand, an option it does not list, a missing or unexpected
 * option value, an argument no option takes. Empty when the command line fits the CLI.
 */
export function commandLineProblems(main: string, label: string, argv: readonly string[]): string[] {
  const [command, ...args] = argv;
  const commands = cliCommands(main);
  if (!command || !commands.has(command))
    return [`${label}: pgferry has no command "${command ?? ''}" (it has ${[...commands].join(', ')})`];
  const { flags } = cliUsage(main, command);
  const problems: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (!flag.startsWith('--')) {
      problems.push(`${label}: pgferry ${command} takes no argument "${args[i]}" here`);
      continue;
    }
    const takesValue = flags.get(flag);
    if (takesValue === undefined) {
      problems.push(`${label}: pgferry ${command} has no option ${flag} (see pgferry ${command} --help)`);
    } else if (takesValue && inline === undefined) {
      const value = args[i + 1];
      if (value === undefined || value.startsWith('--'))
        problems.push(`${label}: pgferry ${command} ${flag} needs a value`);
      else i++;
    } else if (!takesValue && inline !== undefined) {
      problems.push(`${label}: pgferry ${command} ${flag} takes no value`);
    }
  }
  return problems;
}
