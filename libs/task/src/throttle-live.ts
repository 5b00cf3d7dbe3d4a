import { hostname } from 'node:os';
import type { Client, PoolClient } from 'pg';
import type { ThrottleSettings } from '@pgferry/core';
import { readThrottle, reportThrottle } from '@pgferry/control';
import type { Emit } from './migration-event';

/** A stage's limiter as the live throttle drives it (SnapshotThrottle, the appliers' Throttle). */
export interface StageLimiter<L extends object> {
  setLimits(limits: L): void;
  readonly totals: Record<string, number>;
  readonly waitedMs: number;
}

export interface LiveThrottleOptions<S extends keyof ThrottleSettings> {
  task: string;
  stage: S;
  /** Names this process's report (one row per process in pgferry.throttle_reports). */
  process: string;
  /** The spec's limits, in force until the destination holds a record of the task's. */
  spec: ThrottleSettings;
  /** Processes sharing the limit (the supervised appliers): each takes 1/share of it. */
  share?: number;
  emit?: Emit;
}

/** Report names of the limiter totals, per second. */
const RATE_NAMES: Record<string, string> = {
  queries: 'sourceQueriesPerSecond',
  rows: 'rowsPerSecond',
  bytes: 'bytesPerSecond',
};

/**
 * Keeps a running stage's limiter at the limits in force (pgferry.throttle) and reports what it
 * does: each `poll` (about once a second, on a destination connection the caller owns) reads
 * the limits, gives them to the limiter from its next window on, records the rates since the
 * last poll and whether the limiter waited in pgferry.throttle_reports (the task API and
 * `pgferry throttle` read them), and emits them (migrate's status line). Idempotent.
 */
export class LiveThrottle<S extends keyof ThrottleSettings> {
  private last: { at: number; totals: Record<string, number>; waitedMs: number } | null = null;

  constructor(
    private readonly opts: LiveThrottleOptions<S>,
    readonly limiter: StageLimiter<ThrottleSettings[S]>,
  ) {
    limiter.setLimits(this.share(opts.spec[opts.stage]));
  }

  private share(limits: ThrottleSettings[S]): ThrottleSettings[S] {
    const n = Math.max(1, this.opts.share ?? 1);
    return Object.fromEntries(
      Object.entries(limits).map(([k, v]) => [k, typeof v === 'number' ? v / n : v]),
    ) as ThrottleSettings[S];
  }

  async poll(client: Pick<Client | PoolClient, 'query'>): Promise<void> {
    const record = await readThrottle(client, this.opts.task);
    const limits = (record?.limits ?? this.opts.spec)[this.opts.stage];
    const mine = this.share(limits);
    this.limiter.setLimits(mine);
    const now = Date.now();
    const totals = { ...this.limiter.totals };
    const waitedMs = this.limiter.waitedMs;
    const before = this.last;
    this.last = { at: now, totals, waitedMs };
    if (!before || now <= before.at) return;
    const seconds = (now - before.at) / 1000;
    const rates: Record<string, number> = {};
    for (const [k, v] of Object.entries(totals))
      if (RATE_NAMES[k]) rates[RATE_NAMES[k]] = (v - (before.totals[k] ?? 0)) / seconds;
    const throttled = waitedMs > before.waitedMs;
    const report = { limits: mine as Record<string, number>, rates, throttled };
    await reportThrottle(client, this.opts.task, this.opts.process, this.opts.stage, report);
    this.opts.emit?.({
      kind: 'throttle',
      stage: this.opts.stage,
      limits: limits as Record<string, number>,
      rates,
      throttled,
    });
  }
}

/** An applier process's name in pgferry.throttle_reports: where it runs. */
export function applierProcessName(): string {
  return `applier ${hostname()}:${process.pid}`;
}
