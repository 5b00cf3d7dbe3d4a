import { hostname } from 'node:os';
import { connect, resolveEndpoint } from '@pgferry/pg';
import { withLease } from '@pgferry/control';
import { runStreamCapture } from '@pgferry/capture';
import type { StreamSettings } from './process-config';
import { streamCaptureOptions, type ProcessClients } from './process-options';

/** The lease role of the stream capture: one process streams the slot at a time. */
export const CAPTURE_LEASE = 'capture';

/** How this process is named in pgferry.leases (and in the waiting lines of the others). */
export function leaseHolder(): string {
  return `${hostname()}:${process.pid}`;
}

/**
 * The stream capture under the task's capture lease: waits while another capture holds it (a
 * standby `pgferry capture`, or the controller's own child), streams while it holds it, and stops
 * when it is lost (this process stalled past the lease's ttl and another took over) or `stop`
 * aborts. The slot would refuse a second reader anyway; the lease makes the standby wait
 * quietly and take over within the ttl of the first one's death.
 */
export async function leasedStreamCapture(
  settings: StreamSettings,
  clients: Omit<ProcessClients, 'registry'> & { stop: AbortSignal; onWait?: (holder: string) => void },
): Promise<void> {
  const dst = resolveEndpoint(settings.spec.destination, 'destination');
  await withLease(
    {
      connect: () => connect(dst, 'destination', { applicationName: 'pgferry capture lease' }),
      task: settings.spec.name,
      role: CAPTURE_LEASE,
      holder: leaseHolder(),
      signal: clients.stop,
      onWait: (current) => clients.onWait?.(current.holder),
    },
    (lost) => runStreamCapture(streamCaptureOptions(settings, { ...clients, stop: lost })),
  );
}
