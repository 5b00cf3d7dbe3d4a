import type { ThrottleSettings } from '@pgferry/core';
import { classifyPgError } from '@pgferry/pg';
import type { Queryable } from './control-schema';

/**
 * The limits in force for a task (pgferry.throttle), read by its capture and appliers every
 * second, so a change reaches running processes within about a second and a restarted one
 * starts under the current limits. `spec_limits` is the spec's options.throttle as migrate last
 * started with it: a limit set while running (`pgferry throttle`) survives a restart of migrate
 * with the same spec, and an edited spec replaces it.
 */
export interface ThrottleRecord {
  limits: ThrottleSettings;
  specLimits: ThrottleSettings;
  /** 'spec', or who set it while running ('pgferry throttle', 'api'). */
  changedBy: string;
  changedAt: Date;
}

/** What one process reports about its limit, about once a second. */
export interface ThrottleReport {
  /** The limits this process applies (its share of the task's, with several appliers). */
  limits: Record<string, number>;
  /** Per second over the last report's interval, per measure (rowsPerSecond, ...). */
  rates: Record<string, number>;
  /** It waited for the limit during that interval. */
  throttled: boolean;
}

export interface ThrottleStatus {
  limits: ThrottleSettings;
  changedBy: string;
  changedAt: string;
  /** Per stage, the processes that reported in the last 5 s, summed. */
  full: { rates: Record<string, number>; throttled: boolean; processes: number } | null;
  incremental: { rates: Record<string, number>; throttled: boolean; processes: number } | null;
}

const EMPTY: ThrottleSettings = { full: {}, incremental: {} };

/**
 * At migrate's start: records the spec's limits. They become the limits in force unless the
 * same spec was recorded before (a restarted task keeps what was set while it ran).
 */
export async function recordSpecThrottle(
  client: Queryable,
  task: string,
  spec: ThrottleSettings,
): Promise<void> {
  try {
    await client.query(
      `INSERT INTO pgferry.throttle (task, spec_limits, limits, changed_by) VALUES ($1, $2, $2, 'spec')
       ON CONFLICT (task) DO UPDATE SET spec_limits = EXCLUDED.spec_limits, limits = EXCLUDED.limits,
         changed_by = 'spec', changed_at = now()
       WHERE pgferry.throttle.spec_limits IS DISTINCT FROM EXCLUDED.spec_limits`,
      [task, JSON.stringify(spec)],
    );
  } catch (err) {
    throw classifyPgError(err, `recording the throttle of task ${task} on the destination`);
  }
}

export async function readThrottle(client: Queryable, task: string): Promise<ThrottleRecord | null> {
  const { rows } = await client.query(
    `SELECT limits, spec_limits, changed_by, changed_at FROM pgferry.throttle WHERE task = $1`,
    [task],
  );
  if (!rows[0]) return null;
  return {
    limits: { ...EMPTY, ...(rows[0].limits as ThrottleSettings) },
    specLimits: { ...EMPTY, ...(rows[0].spec_limits as ThrottleSettings) },
    changedBy: rows[0].changed_by,
    changedAt: rows[0].changed_at,
  };
}

/**
 * Replaces the limits in force, for running and restarted processes alike (validated by the
 * caller). Returns false when the task has no throttle record (migrate never started it).
 */
export async function storeThrottle(
  client: Queryable,
  task: string,
  limits: ThrottleSettings,
  changedBy: string,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE pgferry.throttle SET limits = $2, changed_by = $3, changed_at = now() WHERE task = $1`,
    [task, JSON.stringify(limits), changedBy],
  );
  return (rowCount ?? 0) > 0;
}

export async function reportThrottle(
  client: Queryable,
  task: string,
  process: string,
  stage: 'full' | 'incremental',
  report: ThrottleReport,
): Promise<void> {
  await client.query(
    `INSERT INTO pgferry.throttle_reports (task, process, stage, report) VALUES ($1, $2, $3, $4)
     ON CONFLICT (task, process) DO UPDATE SET stage = EXCLUDED.stage, report = EXCLUDED.report, reported_at = now()`,
    [task, process, stage, JSON.stringify(report)],
  );
}

/** The limits in force and what the processes reported in the last 5 s; null without a record. */
export async function readThrottleStatus(client: Queryable, task: string): Promise<ThrottleStatus | null> {
  const record = await readThrottle(client, task);
  if (!record) return null;
  const { rows } = await client.query(
    `SELECT stage, report FROM pgferry.throttle_reports
      WHERE task = $1 AND reported_at > now() - interval '5 seconds'`,
    [task],
  );
  const stage = (name: string) => {
    const reports = rows.filter((r) => r.stage === name).map((r) => r.report as ThrottleReport);
    if (!reports.length) return null;
    const rates: Record<string, number> = {};
    for (const r of reports) for (const [k, v] of Object.entries(r.rates)) rates[k] = (rates[k] ?? 0) + v;
    return { rates, throttled: reports.some((r) => r.throttled), processes: reports.length };
  };
  return {
    limits: record.limits,
    changedBy: record.changedBy,
    changedAt: record.changedAt.toISOString(),
    full: stage('full'),
    incremental: stage('incremental'),
  };
}
