import { SlotInvalidatedError } from '@pgferry/capture';
import type { SlotWal } from '@pgferry/control';

/** Bytes as a user reads them: 12.3 MB. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/**
 * Watches the WAL the task's slot holds back on the source, as the capture reports it with the
 * lag. `check` throws SlotInvalidatedError when the source invalidated the slot (wal_status
 * lost: the task cannot go on), and returns a warning, once per crossing, when the retained WAL
 * passes options.walRetainedAlertBytes or the slot's wal_status turns unreserved (the source will
 * invalidate it at the next checkpoint past max_slot_wal_keep_size); null otherwise.
 */
export class SlotWalWatch {
  private warned = { retained: false, unreserved: false };

  constructor(
    private readonly task: string,
    private readonly alertBytes: number | undefined,
  ) {}

  check(slot: SlotWal | null): string | null {
    if (!slot) return null;
    const name = `pgferry_${this.task}`;
    if (slot.walStatus === 'lost')
      throw new SlotInvalidatedError(this.task, name, slot.maxSlotWalKeepSizeBytes);
    const retained = slot.retainedBytes ?? 0;
    const headroom =
      slot.safeWalSizeBytes === null
        ? ''
        : `, ${formatBytes(Math.max(0, slot.safeWalSizeBytes))} before max_slot_wal_keep_size`;
    const over = this.alertBytes !== undefined && retained >= this.alertBytes;
    const unreserved = slot.walStatus === 'unreserved';
    let warning: string | null = null;
    if (unreserved && !this.warned.unreserved)
      warning = `replication slot ${name} holds ${formatBytes(retained)} of source WAL, past max_slot_wal_keep_size (wal_status unreserved): the source invalidates it at its next checkpoint unless the stream catches up, and the task would have to start over; make sure the capture runs, or raise max_slot_wal_keep_size`;
    else if (over && !this.warned.retained)
      warning = `replication slot ${name} holds ${formatBytes(retained)} of source WAL, over options.walRetainedAlertBytes (${formatBytes(this.alertBytes!)})${headroom}: the stream is behind or stopped; the source keeps this WAL on disk until the capture confirms it`;
    this.warned = { retained: over, unreserved };
    return warning;
  }
}

/** The slot's part of the lag line: "slot retains 12.0 MB (500.0 MB headroom, reserved)". */
export function describeSlotWal(slot: SlotWal | null): string {
  if (!slot) return '';
  const parts = [
    slot.safeWalSizeBytes === null ? null : `${formatBytes(Math.max(0, slot.safeWalSizeBytes))} headroom`,
    slot.walStatus,
  ].filter(Boolean);
  return `slot retains ${slot.retainedBytes === null ? '-' : formatBytes(slot.retainedBytes)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}
