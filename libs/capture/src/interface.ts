import type { ChangeEvent } from './change-event';
import type { Lsn } from '@pgferry/pg';

/** A stage that takes change events one at a time, in order (the encoder and publisher). */
export interface ChangeProcessor {
  /** Resolves when the event is taken; the source sends the next one only then. */
  process(event: ChangeEvent): Promise<void> | void;
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
