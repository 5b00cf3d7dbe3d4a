import type { Writable } from 'node:stream';
import { describeSlotWal, type MigrationEvent } from '@pgferry/task';
import { formatStageThrottle } from './throttle-format';

interface TableProgress {
  estimated: number;
  captured: number;
  applied: number;
  bytes: number;
}

function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

function bar(done: number, total: number, width = 20): string {
  const f = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/** One status line of the incremental phase: positions, lag, rate, and whether it is delayed. */
export function formatLag(
  lag: Extract<MigrationEvent, { kind: 'lag' }>['lag'],
  recordsPerSecond: number,
  cutoverLsn: string | null,
): string {
  const seconds = lag.lagSeconds === null ? 'unknown' : duration(lag.lagSeconds);
  const bytes = lag.lagBytes === null ? '' : ` ${human(lag.lagBytes)}B`;
  const state = lag.lagSeconds === null ? 'starting' : lag.notDelayed ? 'not delayed' : 'DELAYED';
  const slot = lag.slot ? `  ${describeSlotWal(lag.slot)}` : '';
  // Changes objects.include[].operations leaves out, DDL among them: never applied, shown here.
  const left = Object.entries(lag.skipped ?? {}).filter(([, n]) => n > 0);
  const skipped = left.length
    ? `  not carried (operations): ${left.map(([op, n]) => `${op} ${n}`).join(', ')}`
    : '';
  return `  stream  source ${lag.sourceLsn ?? '-'}  captured ${lag.capturedLsn ?? '-'}  applied ${lag.appliedLsn ?? '-'}  lag ${seconds}${bytes}  ${human(recordsPerSecond)} rec/s  ${state}${slot}${skipped}${cutoverLsn ? `  (cutover: catching up to ${cutoverLsn})` : ''}`;
}

/**
 * Renders migration events: one line per phase change, and during the full-data phase a
 * progress block (rows and bytes done of the estimate, rate, ETA) refreshed at most every
 * `intervalMs`; on a terminal it redraws in place, elsewhere it prints plain lines.
 */
export class ProgressReporter {
  private tables = new Map<string, TableProgress>();
  private started = Date.now();
  private lastDraw = 0;
  private drawnLines = 0;
  private lastLag = 0;
  /** The last throttle report per stage, shown while under 5 s old. */
  private throttles = new Map<string, { at: number; e: Extract<MigrationEvent, { kind: 'throttle' }> }>();

  constructor(
    private readonly out: Writable & { isTTY?: boolean },
    private readonly intervalMs = 1000,
  ) {}

  handle = (e: MigrationEvent): void => {
    switch (e.kind) {
      case 'plan':
        for (const t of e.tables)
          this.tables.set(t.name, { estimated: t.estimatedRows, captured: 0, applied: 0, bytes: 0 });
        return;
      case 'phase':
        this.clear();
        this.out.write(`${e.phase.padEnd(12)} ${e.status}${e.detail ? `: ${e.detail}` : ''}\n`);
        if (e.phase === 'full-data' && e.status === 'running') this.started = Date.now();
        return;
      case 'captured': {
        const t = this.tables.get(e.table.replace(/^"(.*)"\."(.*)"$/, '$1.$2').replace(/""/g, '"'));
        if (t) {
          t.captured += e.rows;
          t.bytes += e.bytes;
        }
        this.maybeDraw();
        return;
      }
      case 'schema-change':
        this.clear();
        this.out.write(
          `schema       applied on the destination: ${e.statement.length > 200 ? `${e.statement.slice(0, 200)}...` : e.statement}\n`,
        );
        if (e.warning) this.out.write(`WARNING      ${e.warning}\n`);
        this.drawnLines = 0;
        return;
      case 'warning':
        this.clear();
        this.out.write(`WARNING      ${e.message}\n`);
        this.drawnLines = 0;
        return;
      case 'topics':
        this.clear();
        if (e.reset.length)
          this.out.write(
            `topics       reset (--reset-topics): deleted and created again ${e.reset.join(', ')}, which held another run's records\n`,
          );
        for (const w of e.warnings) this.out.write(`WARNING      ${w}\n`);
        this.drawnLines = 0;
        return;
      case 'new-table':
        this.clear();
        this.out.write(
          `stream       gained ${e.table} (created or renamed on the source): its rows follow on topic ${e.topic}\n`,
        );
        this.drawnLines = 0;
        return;
      case 'key':
        this.clear();
        this.out.write(
          e.status === 'building'
            ? `full-data    building the key of ${e.table} (left for after the load)\n`
            : `full-data    built the key of ${e.table} in ${((e.ms ?? 0) / 1000).toFixed(1)}s\n`,
        );
        this.drawnLines = 0;
        return;
      case 'throttle':
        this.throttles.set(e.stage, { at: Date.now(), e });
        return;
      case 'lag': {
        // On a terminal the line is redrawn in place every second; elsewhere one line per 10 s.
        const now = Date.now();
        if (now - this.lastLag < (this.out.isTTY ? this.intervalMs : 10 * this.intervalMs)) return;
        this.lastLag = now;
        this.clear();
        const throttle = this.throttleLine('incremental');
        this.out.write(
          `${formatLag(e.lag, e.recordsPerSecond, e.cutoverLsn)}${throttle ? `  ${throttle}` : ''}\n`,
        );
        this.drawnLines = this.out.isTTY ? 1 : 0;
        return;
      }
      case 'applied': {
        const t = [...this.tables.entries()].find(([name]) =>
          name.endsWith(`.${e.table.split('.').slice(1).join('.')}`),
        );
        if (t) t[1].applied += e.rows;
        this.maybeDraw();
        return;
      }
    }
  };

  private throttleLine(stage: 'full' | 'incremental'): string {
    const t = this.throttles.get(stage);
    if (!t || Date.now() - t.at > 5000) return '';
    return formatStageThrottle(stage, t.e.limits, t.e);
  }

  private maybeDraw(): void {
    const now = Date.now();
    if (now - this.lastDraw < this.intervalMs) return;
    this.lastDraw = now;
    this.clear();
    const lines = this.render();
    this.out.write(`${lines.join('\n')}\n`);
    this.drawnLines = this.out.isTTY ? lines.length : 0;
  }

  private clear(): void {
    if (this.drawnLines > 0 && this.out.isTTY) this.out.write(`\x1b[${this.drawnLines}A\x1b[0J`);
    this.drawnLines = 0;
  }

  render(): string[] {
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    let est = 0;
    let applied = 0;
    let captured = 0;
    let bytes = 0;
    const lines: string[] = [];
    for (const [name, t] of this.tables) {
      est += t.estimated;
      applied += t.applied;
      captured += t.captured;
      bytes += t.bytes;
      if (t.captured || t.applied)
        lines.push(
          `  ${name.padEnd(32).slice(0, 32)} ${bar(t.applied, Math.max(t.estimated, t.captured))} ${human(t.applied)}/${human(Math.max(t.estimated, t.captured))} rows`,
        );
    }
    const rate = applied / secs;
    const eta = rate > 0 && est > applied ? `${Math.ceil((est - applied) / rate)}s` : '-';
    lines.unshift(
      `  full data ${bar(applied, Math.max(est, captured), 30)} ${human(applied)}/${human(Math.max(est, captured))} rows, ${human(bytes)}B read, ${human(rate)} rows/s, ETA ${eta}`,
    );
    const throttle = this.throttleLine('full');
    if (throttle) lines.splice(1, 0, `  ${throttle}`);
    return lines;
  }
}
