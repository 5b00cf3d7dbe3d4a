import type { StreamLag } from '@pgferry/control';
import { parseLsn } from '@pgferry/pg';

/** A process of the stream the watch found stuck, and why. */
export interface Stall {
  process: 'capture' | 'applier';
  reason: string;
}

/**
 * The controller's watchdog over the incremental phase, fed each lag reading: a process whose
 * position has not moved for `stallMs` while work waits for it is stuck (a connection that went
 * silent without closing, a lock that never comes), and is named so the controller restarts it.
 * The applier moves when its applied LSN or its applied records change; work waits for it while
 * the capture's confirmed LSN is ahead of the applied one. The capture moves when its confirmed
 * LSN or its published records change, or reports at all; work always waits for it (the
 * heartbeat commits every second). `reset` after a gap in the readings (the controller lost
 * its own connection): time without readings is nobody's stall.
 */
export class StallWatch {
  private applier: { key: string; since: number } | null = null;
  private capture: { key: string; since: number } | null = null;

  constructor(private readonly stallMs: number) {}

  reset(): void {
    this.applier = this.capture = null;
  }

  observe(lag: StreamLag, now: number = Date.now()): Stall[] {
    const stalls: Stall[] = [];
    const seconds = Math.round(this.stallMs / 1000);
    const waiting =
      lag.capturedLsn !== null &&
      (lag.appliedLsn === null || parseLsn(lag.capturedLsn) > parseLsn(lag.appliedLsn));
    const applierKey = `${lag.appliedLsn}/${lag.appliedRecords}`;
    if (!waiting || this.applier?.key !== applierKey) this.applier = { key: applierKey, since: now };
    else if (now - this.applier.since >= this.stallMs) {
      stalls.push({
        process: 'applier',
        reason: `the applier has applied nothing for ${seconds} s (applied ${lag.appliedLsn ?? 'nothing yet'}) while the capture is at ${lag.capturedLsn}`,
      });
      this.applier = { key: applierKey, since: now };
    }
    if (lag.reportedAt !== null) {
      const captureKey = `${lag.capturedLsn}/${lag.publishedRecords}/${lag.reportedAt}`;
      if (this.capture?.key !== captureKey) this.capture = { key: captureKey, since: now };
      else if (now - this.capture.since >= this.stallMs) {
        stalls.push({
          process: 'capture',
          reason: `the capture has not reported or moved for ${seconds} s (last report ${lag.reportedAt}, at ${lag.capturedLsn ?? '-'})`,
        });
        this.capture = { key: captureKey, since: now };
      }
    }
    return stalls;
  }
}
