import type { Writable } from 'node:stream';
import { PgferryError } from '@pgferry/core';
import { connect, describeEndpoint } from '@pgferry/pg';
import { taskEndpoint } from './release-command';
import { requestCutover } from '@pgferry/control';
import { formatLag } from './progress';
import { formatStageThrottle } from './throttle-format';
import { readTaskStatus } from './api/task-status';

export interface CutoverOptions {
  spec?: string;
  target?: string;
  /** A file whose first line is the destination's password. */
  targetPasswordFile?: string;
  name?: string;
  /** Give up waiting after this many seconds (the request stays; the running migrate still acts on it). */
  timeout?: number;
  pollMs?: number;
}

/**
 * `pgferry cutover`: asks the task's running migrate (through the destination's control schema,
 * so it works from any machine that reaches the destination) to finish: it waits until the
 * destination holds every change the source had when the request was seen, stops streaming,
 * sets the sequences and verifies. Prints the lag while it waits. Exit 0 when the cutover phase
 * is done, 1 when it failed or the wait timed out.
 */
export async function runCutover(opts: CutoverOptions, out: Writable): Promise<number> {
  const say = (s: string) => out.write(`${s}\n`);
  const { task, endpoint: destination } = await taskEndpoint(
    opts.spec,
    opts.target,
    opts.name,
    'destination',
    opts.targetPasswordFile,
  );
  const client = await connect(destination, 'destination', { applicationName: 'pgferry cutover' });
  try {
    const status = await readTaskStatus(client, task);
    if (!status) throw new PgferryError(`task ${task} does not exist on ${describeEndpoint(destination)}`);
    if (!status.stream)
      throw new PgferryError(`task ${task} has no incremental phase: there is nothing to cut over`);
    await requestCutover(client, task);
    say(`cutover of task ${task} requested; stop writes on the source now, if not done already`);
    say('waiting for the running migrate to catch up, set sequences and verify');
    const started = Date.now();
    let lastLine = 0;
    for (;;) {
      const s = (await readTaskStatus(client, task))!;
      const cut = s.phases.find((p) => p.phase === 'cutover');
      if (cut?.status === 'done') {
        say(`cutover done: ${detailText(cut.detail)}`);
        say(`run pgferry release to drop the slot, publication and heartbeat table from the source`);
        return 0;
      }
      if (
        cut?.status === 'failed' ||
        s.phases.some((p) => p.phase === 'incremental' && p.status === 'failed')
      ) {
        const failed = s.phases.find((p) => p.status === 'failed')!;
        say(`cutover failed in phase ${failed.phase}: ${detailText(failed.detail)}`);
        return 1;
      }
      if (opts.timeout !== undefined && Date.now() - started > opts.timeout * 1000) {
        say(
          `gave up waiting after ${opts.timeout}s; the request stays and the running migrate cuts over when it has caught up`,
        );
        return 1;
      }
      if (s.stream && Date.now() - lastLine >= 2000) {
        lastLine = Date.now();
        const stale = s.stream.reportedAt ? (Date.now() - Date.parse(s.stream.reportedAt)) / 1000 : null;
        const throttle = s.throttle
          ? formatStageThrottle('incremental', s.throttle.limits.incremental, s.throttle.incremental)
          : '';
        say(`${formatLag(s.stream, s.stream.recordsPerSecond, null)}${throttle ? `  ${throttle}` : ''}`);
        if (stale === null || stale > 30)
          say(
            `  no capture has reported for ${stale === null ? 'ever' : `${Math.round(stale)}s`}: is pgferry migrate running for task ${task}?`,
          );
      }
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

function detailText(detail: unknown): string {
  const d = (detail ?? {}) as { detail?: string; error?: string };
  return d.detail ?? d.error ?? JSON.stringify(detail);
}
