import type { ThrottleSettings } from '@pgferry/core';
import type { ThrottleStatus } from '@pgferry/control';

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n * 10) / 10);
}

const UNITS: Record<string, string> = {
  sourceQueriesPerSecond: 'queries/s',
  rowsPerSecond: 'rows/s',
  bytesPerSecond: 'B/s',
};

/** "20.0k rows/s, 5.00MB/s" of limits or rates; `none` when empty. */
export function describeRates(rates: Record<string, number | undefined>): string {
  const parts = Object.entries(UNITS)
    .filter(([k]) => rates[k] !== undefined)
    .map(([k, unit]) => `${human(rates[k]!)}${unit === 'B/s' ? '' : ' '}${unit}`);
  return parts.length ? parts.join(', ') : 'none';
}

/**
 * One stage's throttle as the status line shows it: the limits in force, the rates now, and
 * THROTTLED while the stage waits for its limit. Empty when the stage has no limit.
 */
export function formatStageThrottle(
  stage: 'full' | 'incremental',
  limits: Record<string, number | undefined>,
  now: { rates: Record<string, number>; throttled: boolean } | null,
): string {
  if (!Object.values(limits).some((v) => v !== undefined)) return '';
  const rates = now ? `, now ${describeRates(now.rates)}` : '';
  return `throttle ${stage} ${describeRates(limits)}${rates}${now?.throttled ? '  THROTTLED' : ''}`;
}

/** Every line of `pgferry throttle` for a task's throttle status. */
export function formatThrottleStatus(task: string, s: ThrottleStatus): string[] {
  const lines = [`task ${task}: limits set by ${s.changedBy} at ${s.changedAt}`];
  for (const stage of ['full', 'incremental'] as const) {
    const limits = (s.limits as ThrottleSettings)[stage] as Record<string, number | undefined>;
    const now = s[stage];
    lines.push(
      `  ${stage.padEnd(12)} limit ${describeRates(limits)}${now ? `; now ${describeRates(now.rates)}${now.throttled ? ', THROTTLED' : ''}` : ''}`,
    );
  }
  return lines;
}
