import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { loadTaskSpec, PgferryError } from '@pgferry/core';
import {
  connect,
  describeEndpoint,
  resolveEndpoint,
  resolveEndpointPassword,
  type Endpoint,
} from '@pgferry/pg';
import { releaseSource } from '@pgferry/task';
import { passwordWarning } from './migrate-command';

export interface ReleaseOptions {
  spec?: string;
  source?: string;
  /** A file whose first line is the source's password. */
  sourcePasswordFile?: string;
  name?: string;
  /** The task's work dir (default .pgferry/<name>): its embedded broker data is removed. */
  workDir?: string;
}

/**
 * The task's name and one of its endpoints: from the spec file, or from a URL and --name (default
 * "migrate"), its password from this command's input (the spec, `passwordFile`, PGPASSWORD,
 * PGPASSFILE or ~/.pgpass), never from the task's stored spec. The error names the flags to give.
 */
export async function taskEndpoint(
  spec: string | undefined,
  url: string | undefined,
  name: string | undefined,
  side: 'source' | 'destination',
  passwordFile?: string,
): Promise<{ task: string; endpoint: Endpoint }> {
  const resolve = async (ep: Parameters<typeof resolveEndpoint>[0]) =>
    resolveEndpoint(
      (
        await resolveEndpointPassword(
          passwordFile ? { ...ep, passwordFile } : ep,
          side,
          process.env,
          passwordWarning,
        )
      ).endpoint,
      side,
    );
  if (spec) {
    const loaded = loadTaskSpec(spec, process.env);
    return { task: loaded.name, endpoint: await resolve(loaded[side]) };
  }
  const flag = side === 'source' ? '--source' : '--target';
  if (!url) throw new PgferryError(`give --spec FILE, or ${flag} URL and --name TASK`);
  return { task: name ?? 'migrate', endpoint: await resolve({ url }) };
}

/**
 * `pgferry release`: drops the task's objects on the source and prints each one; exit code 1
 * when something had to be left behind (a slot in use), with the reason and the statement.
 */
export async function runRelease(opts: ReleaseOptions, out: Writable): Promise<number> {
  const say = (s: string) => out.write(`${s}\n`);
  const { task, endpoint: source } = await taskEndpoint(
    opts.spec,
    opts.source,
    opts.name,
    'source',
    opts.sourcePasswordFile,
  );
  const client = await connect(source, 'source', { applicationName: 'pgferry release' });
  try {
    const result = await releaseSource(client, task);
    say(`release of task ${task} on ${describeEndpoint(source)}`);
    for (const d of result.dropped) say(`  dropped  ${d}`);
    for (const l of result.leftBehind) say(`  LEFT     ${l.object}: ${l.reason}\n           fix: ${l.fix}`);
    if (result.dropped.length === 0 && result.leftBehind.length === 0)
      say('  nothing of this task is left on the source');
    // The embedded broker's topics of every run of the task: only the task ever reads them.
    const kafkaDir = join(opts.workDir ?? join('.pgferry', task), 'kafka');
    if (existsSync(kafkaDir)) {
      rmSync(kafkaDir, { recursive: true, force: true });
      say(`  removed  embedded broker data ${kafkaDir}`);
    }
    return result.leftBehind.length ? 1 : 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}
