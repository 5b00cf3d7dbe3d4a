import type { Writable } from 'node:stream';
import { changeThrottle, parseThrottleChange, PgferryError, type ThrottleChange } from '@pgferry/core';
import { connect, describeEndpoint } from '@pgferry/pg';
import { readThrottle, readThrottleStatus, storeThrottle } from '@pgferry/control';
import { taskEndpoint } from './release-command';
import { formatThrottleStatus } from './throttle-format';

export interface ThrottleOptions {
  spec?: string;
  target?: string;
  targetPasswordFile?: string;
  name?: string;
  fullQueries?: string;
  fullRows?: string;
  fullBytes?: string;
  incrementalRows?: string;
  incrementalBytes?: string;
  /** Clears every limit. */
  clear?: boolean;
}

/** A flag's value: a number above 0, or `off` to clear the limit. */
function flagValue(flag: string, value: string | undefined): number | null | undefined {
  if (value === undefined) return undefined;
  if (value.toLowerCase() === 'off') return null;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new PgferryError(
      `${flag} ${JSON.stringify(value)}: give a number above 0 (per second), or off to clear the limit`,
    );
  return n;
}

/** The change the flags ask for (see throttleChangeSchema). */
export function throttleChangeFromFlags(opts: ThrottleOptions): ThrottleChange {
  if (opts.clear)
    return {
      full: { sourceQueriesPerSecond: null, rowsPerSecond: null, bytesPerSecond: null },
      incremental: { rowsPerSecond: null, bytesPerSecond: null },
    };
  const full = {
    sourceQueriesPerSecond: flagValue('--full-queries', opts.fullQueries),
    rowsPerSecond: flagValue('--full-rows', opts.fullRows),
    bytesPerSecond: flagValue('--full-bytes', opts.fullBytes),
  };
  const incremental = {
    rowsPerSecond: flagValue('--incremental-rows', opts.incrementalRows),
    bytesPerSecond: flagValue('--incremental-bytes', opts.incrementalBytes),
  };
  return parseThrottleChange({ full, incremental });
}

/**
 * `pgferry throttle`: changes a task's limits in force in the destination's control schema,
 * where its running capture and appliers read them every second (and a restarted one starts
 * under them); without a change it shows them. Prints the limits and the rates reported now.
 */
export async function runThrottle(opts: ThrottleOptions, out: Writable): Promise<number> {
  const say = (s: string) => out.write(`${s}\n`);
  const change = throttleChangeFromFlags(opts);
  const { task, endpoint } = await taskEndpoint(
    opts.spec,
    opts.target,
    opts.name,
    'destination',
    opts.targetPasswordFile,
  );
  const client = await connect(endpoint, 'destination', { applicationName: 'pgferry throttle' });
  try {
    const record = await readThrottle(client, task).catch(() => null);
    if (!record)
      throw new PgferryError(
        `task ${task} has no throttle record on ${describeEndpoint(endpoint)}: start it with pgferry migrate (which records options.throttle), or check --name`,
      );
    const changes = Object.values(change).some((s) => Object.values(s ?? {}).some((v) => v !== undefined));
    if (changes) {
      await storeThrottle(client, task, changeThrottle(record.limits, change), 'pgferry throttle');
      say(`throttle of task ${task} changed; its running capture and appliers apply it within a second`);
    }
    for (const line of formatThrottleStatus(task, (await readThrottleStatus(client, task))!)) say(line);
    return 0;
  } finally {
    await client.end().catch(() => undefined);
  }
}
