import type { Writable } from 'node:stream';
import { loadTaskSpec, PgferryError } from '@pgferry/core';
import { connect, describeEndpoint, resolveEndpoint } from '@pgferry/pg';
import { releaseSource } from '@pgferry/pipeline';

export interface ReleaseOptions {
  spec?: string;
  source?: string;
  name?: string;
}

/**
 * `pgferry release`: drops the task's objects on the source and prints each one; exit code 1
 * when something had to be left behind (a slot in use), with the reason and the statement.
 */
export async function runRelease(opts: ReleaseOptions, out: Writable): Promise<number> {
  const say = (s: string) => out.write(`${s}\n`);
  let task: string;
  let source;
  if (opts.spec) {
    const spec = loadTaskSpec(opts.spec);
    task = spec.name;
    source = resolveEndpoint(spec.source, 'source');
  } else {
    if (!opts.source) throw new PgferryError('give --spec FILE, or --source URL and --name TASK');
    task = opts.name ?? 'migrate';
    source = resolveEndpoint({ url: opts.source }, 'source');
  }
  const client = await connect(source, 'source', { applicationName: 'pgferry release' });
  try {
    const result = await releaseSource(client, task);
    say(`release of task ${task} on ${describeEndpoint(source)}`);
    for (const d of result.dropped) say(`  dropped  ${d}`);
    for (const l of result.leftBehind) say(`  LEFT     ${l.object}: ${l.reason}\n           fix: ${l.fix}`);
    if (result.dropped.length === 0 && result.leftBehind.length === 0)
      say('  nothing of this task is left on the source');
    return result.leftBehind.length ? 1 : 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}
