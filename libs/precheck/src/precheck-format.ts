import type { PrecheckLevel, PrecheckReport } from './precheck-report';

const MARK: Record<PrecheckLevel, string> = { passed: 'passed', failed: 'FAILED', alert: 'alert ' };

/**
 * The report for a terminal: one line per item (mark, check name padded to a common width, then
 * the message), and the fix of a failed item or alert indented under the message unless the
 * message already holds it word for word (a final ";" aside). Multi-line fixes keep their line breaks. Pure.
 */
export function formatPrecheckReport(report: PrecheckReport): string {
  const width = Math.max(0, ...report.items.map((i) => i.name.length));
  const indent = ' '.repeat(2 + 6 + 2 + width + 2);
  const lines: string[] = [];
  for (const item of report.items) {
    lines.push(`  ${MARK[item.level]}  ${item.name.padEnd(width)}  ${item.message}`);
    if (item.fix && item.level !== 'passed' && !item.message.includes(item.fix.replace(/;$/, ''))) {
      item.fix.split('\n').forEach((line, n) => lines.push(`${indent}${n === 0 ? 'fix: ' : '     '}${line}`));
    }
  }
  return lines.join('\n');
}

const UNITS = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Sizes as pg_size_pretty prints them: 1024-based, whole numbers below 10240 of a unit. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 10 * 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Math.round(value)} ${UNITS[unit]}`;
}

/** A count with thousands separators, independent of the process locale: 1234567 -> 1,234,567. */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** At most `max` names joined by ", ", then "and N more". */
export function listNames(names: readonly string[], max = 5): string {
  if (names.length <= max) return names.join(', ');
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** "1 table", "2 tables"; `many` when the plural is not singular + "s". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}
