import { RateLimiter, realClock, type Clock, type FullThrottle } from '@pgferry/core';
import type { CopyRows } from '@pgferry/pg';

/**
 * The full load's rate limit at the source (task spec `options.throttle.full`), shared by the
 * capture's snapshot workers: statements the chunk reader sends to the source per second
 * (BEGIN, SET TRANSACTION SNAPSHOT, COPY, COMMIT: three or four per chunk), rows and COPY text
 * bytes read per second. Workers wait here before each statement and before each slice of rows
 * goes on to Kafka; the COPY socket is not read while they wait, so the source is read at the
 * limit and memory stays at one read batch per worker.
 *
 * Precision: the bucket holds 50 ms of budget and a slice is at most 25 ms of it, so over any
 * window the rows (bytes) let through exceed the limit by at most 50 ms of budget, plus a
 * slice per worker on its way to Kafka. A slice is sent only once the one before it is
 * acknowledged, so slices much smaller than a Kafka round trip would hold a worker below the
 * limit: at 25 ms, two workers reach 2.5 times the limit on a broker that acknowledges in 20 ms. Limits change with `setLimits` from the next slice on.
 */
const BURST_SECONDS = 0.05;
const SLICE_SECONDS = 0.025;

type Measure = 'queries' | 'rows' | 'bytes';

export class SnapshotThrottle {
  private readonly limiter: RateLimiter<Measure>;

  constructor(limits: FullThrottle = {}, clock: Clock = realClock) {
    this.limiter = new RateLimiter(toLimits(limits), { burstSeconds: BURST_SECONDS, clock });
  }

  get limited(): boolean {
    return this.limiter.limited;
  }

  get waitedMs(): number {
    return this.limiter.waitedMs;
  }

  /** Queries, rows and bytes that went through since the start. */
  get totals(): { queries: number; rows: number; bytes: number } {
    const t = this.limiter.taken;
    return { queries: t.get('queries') ?? 0, rows: t.get('rows') ?? 0, bytes: t.get('bytes') ?? 0 };
  }

  setLimits(limits: FullThrottle): void {
    this.limiter.setLimits(toLimits(limits));
  }

  /** Waits until one more statement may go to the source. */
  query(): Promise<void> {
    return this.limiter.take({ queries: 1 });
  }

  /**
   * Rows a COPY read batch should hold under the limits now (at most `max`): about one slice,
   * so the source is not read far ahead of the rate. `rowBytes` is the average row's size so far.
   */
  batchRows(max: number, rowBytes: number): number {
    let rows = max;
    const r = this.limiter.rate('rows');
    const b = this.limiter.rate('bytes');
    if (r) rows = Math.min(rows, r * SLICE_SECONDS);
    if (b && rowBytes > 0) rows = Math.min(rows, (b * SLICE_SECONDS) / rowBytes);
    return Math.max(1, Math.floor(rows));
  }

  /** `send` behind the limit: what the chunk reader calls with each read batch (see rows). */
  sending(
    send: (slice: CopyRows, bytes: number) => Promise<void>,
  ): (batch: CopyRows, bytes: number) => Promise<void> {
    return (batch, bytes) => this.rows(batch, bytes, send);
  }

  /**
   * Lets a read batch through in slices of at most one slice of budget each (the limits may have
   * changed since the batch was sized), calling `send` for each slice once it may go.
   */
  async rows(
    batch: CopyRows,
    bytes: number,
    send: (slice: CopyRows, bytes: number) => Promise<void>,
  ): Promise<void> {
    if (!this.limited) {
      // Counted all the same: the task status shows the rate of an unthrottled load too.
      await this.limiter.take({ rows: batch.length, bytes });
      return send(batch, bytes);
    }
    const rowBytes = batch.length ? bytes / batch.length : 0;
    for (let from = 0; from < batch.length;) {
      const n = Math.min(batch.length - from, this.batchRows(batch.length, rowBytes));
      const slice = n === batch.length ? batch : sliceRows(batch, from, from + n);
      const sliceBytes = n === batch.length ? bytes : sliceByteCount(slice);
      await this.limiter.take({ rows: n, bytes: sliceBytes });
      await send(slice, sliceBytes);
      from += n;
    }
  }
}

function toLimits(t: FullThrottle): Partial<Record<Measure, number>> {
  return { queries: t.sourceQueriesPerSecond, rows: t.rowsPerSecond, bytes: t.bytesPerSecond };
}

function sliceRows(rows: CopyRows, from: number, to: number): CopyRows {
  return {
    length: to - from,
    bufs: rows.bufs.slice(from, to),
    starts: Array.prototype.slice.call(rows.starts, from, to) as number[],
    ends: Array.prototype.slice.call(rows.ends, from, to) as number[],
    utf8: rows.utf8,
  };
}

/** COPY text bytes of the rows, a newline each (as CopyRowBatch.bytes counts them). */
function sliceByteCount(rows: CopyRows): number {
  let n = 0;
  for (let i = 0; i < rows.length; i++) n += rows.ends[i] - rows.starts[i] + 1;
  return n;
}
