import type { ChangeEvent, DataEvent } from './change-event';
import type { Lsn } from '@pgferry/pg';

/** A stage that takes change events one at a time, in order (the encoder and publisher). */
export interface ChangeProcessor {
  /** Resolves when the event is taken; the source sends the next one only then. */
  process(event: ChangeEvent): Promise<void> | undefined;
  /**
   * Optional: encodes a row change of a streamed transaction while the transaction is still
   * open (the source streams it before its commit), so that at the commit only its place in the
   * stream is left to write. Returns the bytes to hold in the transaction's spool, with its
   * first `reserved` bytes left to the caller, or null to be given the change at the commit as
   * usual. Must not keep `event` nor throw; it is replayed as a PreparedEvent.
   */
  prepare?(event: DataEvent, reserved: number): Buffer | null;
}

/** The streaming source: the task's replication slot, decoded. */
export interface ChangeStreamReader {
  /**
   * Streams from the start position until `stop()` (resolves) or a failure (rejects with a
   * classified error; retriable ones mean: run a new reader from the last confirmed LSN).
   */
  run(processor: ChangeProcessor): Promise<void>;
  /**
   * Everything up to `lsn` (a commit's `endLsn` or a keepalive's `lsn`) is stored downstream and
   * need never be sent again. The only way the slot advances. Monotonic: lower values are ignored.
   */
  confirm(lsn: Lsn): void;
  /** Ends the stream and releases the slot. Idempotent. */
  stop(): Promise<void>;
}
