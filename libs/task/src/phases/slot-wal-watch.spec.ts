import { SlotInvalidatedError } from '@pgferry/capture';
import { describeSlotWal, SlotWalWatch } from './slot-wal-watch';

const MB = 1024 * 1024;
const slot = (retainedBytes: number, walStatus = 'reserved', safe: number | null = 500 * MB) => ({
  retainedBytes,
  walStatus,
  safeWalSizeBytes: safe,
  maxSlotWalKeepSizeBytes: safe === null ? null : 1024 * MB,
});

describe('SlotWalWatch', () => {
  it('warns once each time the retained WAL crosses options.walRetainedAlertBytes', () => {
    const w = new SlotWalWatch('orders', 100 * MB);
    expect(w.check(slot(10 * MB))).toBeNull();
    expect(w.check(slot(150 * MB))).toBe(
      'replication slot pgferry_orders holds 150.0 MB of source WAL, over options.walRetainedAlertBytes (100.0 MB), 500.0 MB before max_slot_wal_keep_size: the stream is behind or stopped; the source keeps this WAL on disk until the capture confirms it',
    );
    expect(w.check(slot(160 * MB))).toBeNull();
    expect(w.check(slot(20 * MB))).toBeNull();
    expect(w.check(slot(120 * MB))).toMatch(/holds 120\.0 MB of source WAL, over/);
  });

  it('warns when the slot is unreserved, and stops the task when the source invalidated it', () => {
    const w = new SlotWalWatch('orders', undefined);
    expect(w.check(slot(900 * MB, 'unreserved', 0))).toMatch(
      /past max_slot_wal_keep_size \(wal_status unreserved\): the source invalidates it at its next checkpoint/,
    );
    expect(() => w.check(slot(0, 'lost', null))).toThrow(SlotInvalidatedError);
    expect(() => w.check(slot(0, 'lost', null))).toThrow(
      /replication slot pgferry_orders of task orders was invalidated by the source \(wal_status lost\).*Start over: pgferry release/,
    );
    expect(w.check(null)).toBeNull();
  });

  it('describes the slot for the lag line', () => {
    expect(describeSlotWal(slot(12 * MB))).toBe('slot retains 12.0 MB (500.0 MB headroom, reserved)');
    expect(describeSlotWal(slot(512, 'reserved', null))).toBe('slot retains 512 B (reserved)');
  });
});
