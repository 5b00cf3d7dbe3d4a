import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { loadTaskSpec, PgferryError } from '@pgferry/core';
import { connect, describeEndpoint, resolveEndpoint, type Endpoint } from '@pgferry/pg';
import { releaseSource } from '@pgferry/task';

export interface ReleaseOptions {
  spec?: string;
  source?: string;
  name?: string;
  /** The task's work dir (default .pgferry/<name>): its embedded broker data is removed. */
  workDir?: string;
}

/**
 * The task's name and one of its endpoints: from the spec file, or from a URL and --name (default
 * "migrate"). The error names the flags to give.
 */
export function taskEndpoint(
  spec: string | undefined,
  url: string | undefined,
  name: string | undefined,
  side: 'source' | 'destination',
): { task: string; endpoint: Endpoint } {
  if (spec) {
    const loaded = loadTaskSpec(spec);
    return { task: loaded.name, endpoint: resolveEndpoint(loaded[side], side) };
  }
  const flag = side === 'source' ? '--source' : '--target';
  if (!url) throw new PgferryError(`give --spec FILE, or ${flag} URL and --name TASK`);
  return { task: name ?? 'migrate', endpoint: resolveEndpoint({ url }, side) };
}

/**
 * `pgferry release`: drops the task's objects on the source and prints each one; exit code 1
 * when something had to be left behind (a slot in use), with the reason and the statement.
 */
export async function runRelease(opts: ReleaseOptions, out: Writable): Promise<number> {
  const say = (s: string) => out.write(`${s}\n`);
  const { task, endpoint: source } = taskEndpoint(opts.spec, opts.source, opts.name, 'source');
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
