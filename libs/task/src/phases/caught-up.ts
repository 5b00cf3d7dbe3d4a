import type { StreamLag } from '@pgferry/control';
import { parseLsn } from '@pgferry/pg';

/**
 * Where the stream stands against a cutover's target (the source's position when the request
 * was seen): `caught-up` once the destination holds every change up to it (the applied mark is
 * at or past it) and the capture reports having confirmed it; `capture-behind` when the applied
 * mark is past the target but the capture reports less; null while the applier is behind.
 *
 * The capture confirms a commit before it records the commit's mark, in the same report as its
 * confirmed position, so a mark it recorded is never past the position it reports. The second
 * condition is then redundant, except when the capture restarted from the slot's position (it
 * passes the target again within a heartbeat or two of a quiet source) or a mark is not what it
 * should be: the destination is not taken as caught up on a mark alone.
 */
export function cutoverProgress(lag: StreamLag, target: bigint): 'caught-up' | 'capture-behind' | null {
  if (lag.appliedLsn === null || parseLsn(lag.appliedLsn) < target) return null;
  if (lag.capturedLsn === null || parseLsn(lag.capturedLsn) < target) return 'capture-behind';
  return 'caught-up';
}
