import type { StreamLag } from '@pgferry/control';

/** A StreamLag reading for the phase specs: a stream 4 kB behind, with `over` on top. */
export function streamLag(over: Partial<StreamLag>): StreamLag {
  return {
    sourceLsn: '0/3000',
    capturedLsn: '0/3000',
    appliedLsn: '0/2000',
    lagBytes: 4096,
    lagSeconds: 1,
    notDelayed: true,
    appliedRecords: 10,
    publishedRecords: 20,
    captureLagMs: 5,
    reportedAt: '2026-01-01T00:00:00.000Z',
    slot: null,
    ...over,
  };
}
