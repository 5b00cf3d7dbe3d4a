import type { Lsn } from '@pgferry/pg';
import { FramedRecords, type FramedBatch, type FramedHeader, type KafkaProducer } from '@pgferry/kafka';
import type { StreamMark } from '@pgferry/control';

/** How the change publisher's records go to Kafka, and who hears once they are acknowledged. */
export interface PublishChainOptions {
  producer: KafkaProducer;
  /** Called with a commit's end LSN (or an idle keepalive's LSN) once Kafka acknowledged everything before it. */
  confirm: (lsn: Lsn) => void;
  /** Messages buffered before they are sent, even mid-transaction (bounded memory; default 40000). */
  maxBuffered?: number;
  /**
   * How long a commit's records wait for later transactions to join the same produce request
   * (ms, default 5). Small transactions are then sent many to a request instead of one round
   * trip each; the commits are confirmed together once Kafka acknowledged the request.
   */
  lingerMs?: number;
  /**
   * Next offsets of the topics' partitions ("topic:partition") when this publisher starts: the
   * high watermarks, which cover everything confirmed before. Stream marks start from them.
   */
  startOffsets?: ReadonlyMap<string, bigint>;
  /** Called after each commit is confirmed, with the position the destination must reach to hold it. */
  onCommit?: (mark: StreamMark) => void;
}

/**
 * Bytes buffered before sending. Requests go one at a time and each waits for the broker's
 * writes and fsyncs (one per partition), so a large transaction is sent in as few requests as
 * memory allows: with 512 kB ones, sending a 1M-row UPDATE was bound by that wait (the capture
 * idle most of the time), and 4 MB ones cut its commit-to-all-in-Kafka time by a third. A
 * partition's records are cut into batches of at most the producer's maxBatchBytes, and a
 * request carries one batch per partition (the producer sends the rest in the next rounds).
 */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * Sent but not yet acknowledged bytes before `send` waits for Kafka (back-pressure): a request
 * in flight and one queued behind it keep the chain busy; more only held memory.
 */
const MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/** A commit waits at most this long for more transactions to share its produce request. */
const DEFAULT_LINGER_MS = 5;

/**
 * The change publisher's way to Kafka: records are buffered and sent in produce requests of up
 * to 4 MB that follow each other in order (one at a time, so Kafka keeps their order), while
 * the next events are encoded. A commit is not waited for, only confirmed when its request is
 * acknowledged (acks = all), after every request before it; small transactions share requests
 * (see `lingerMs`). Memory stays bounded: `send` waits when more than 8 MB are unacknowledged.
 * A failed request fails every later `send` and `drain`, and is kept in `failure`.
 */
export class PublishChain {
  /** Records not handed to a request yet, written as Kafka will store them. */
  private readonly buffer: FramedRecords;
  /** The table topics: only their partitions are in the stream marks. */
  readonly tableTopics: Set<string>;
  /** The next offset of every table topic partition written to ("topic:partition"). */
  readonly ends: Map<string, bigint>;
  /** The newest commit whose records are all sent or buffered, not yet handed to a request. */
  private pendingCommit: { endLsn: Lsn; commitTime: Date } | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  /** The chain of produce requests and confirmations, in stream order. */
  private sending: Promise<void> = Promise.resolve();
  private inFlightBytes = 0;
  /** Requests handed to the chain and not finished. */
  private inFlight = 0;
  /** A lingering commit found a request in flight: it is sent once none is (see `commit`). */
  private sendWhenDone = false;
  failure: Error | null = null;
  published = 0;

  /**
   * `inTransaction` is true while a source transaction is open: a lingering commit is then sent
   * with that transaction's records, not by the linger timer.
   */
  constructor(
    private readonly opts: PublishChainOptions,
    tableTopics: Iterable<string>,
    private readonly inTransaction: () => boolean,
    /** Headers every record carries, before its own. */
    headers: readonly FramedHeader[] = [],
  ) {
    this.ends = new Map(opts.startOffsets ?? []);
    this.tableTopics = new Set(tableTopics);
    this.buffer = new FramedRecords(opts.producer.maxBatchBytes, headers);
  }

  /**
   * Buffers one record for `partition` of `topic` (copied: the caller may reuse key, value and
   * header at once); sent with the next request.
   */
  add(
    topic: string,
    partition: number,
    key: Buffer | null,
    value: Buffer | null,
    header: FramedHeader | null,
  ): void {
    this.buffer.add(topic, partition, key, value, header);
  }

  /** Nothing buffered and no commit waiting to be handed to a request. */
  get idle(): boolean {
    return this.buffer.count === 0 && !this.pendingCommit;
  }

  full(): boolean {
    return this.buffer.count >= (this.opts.maxBuffered ?? 40000) || this.buffer.bytes >= MAX_BUFFERED_BYTES;
  }

  /**
   * A commit whose records are all buffered: confirmed once they are acknowledged. Sent now when
   * the buffer is full, else after `lingerMs` unless another transaction opened by then; and if
   * a request is in flight then, once it is acknowledged, with every commit that came meanwhile.
   * Requests go one at a time anyway, so waiting costs the commit nothing, and under load the
   * requests grow instead of queueing up small ones (each costs the broker an fsync per
   * partition, and every stage a round of work).
   */
  commit(endLsn: Lsn, commitTime: Date): Promise<void> | undefined {
    this.pendingCommit = { endLsn, commitTime };
    if (this.full()) return this.send();
    // Later transactions may join this request; the timer sends it if none come soon.
    this.lingerTimer ??= setTimeout(() => {
      this.lingerTimer = null;
      if (this.inTransaction()) return;
      if (this.inFlight > 0) this.sendWhenDone = true;
      else void this.send().catch(() => undefined);
    }, this.opts.lingerMs ?? DEFAULT_LINGER_MS);
    return undefined;
  }

  /** Confirms `lsn` once the requests before are done (an idle keepalive's position). */
  confirmAfterSent(lsn: Lsn): void {
    this.sending = this.sending.then(() => this.opts.confirm(lsn));
  }

  /**
   * Hands the buffer (and the commit it completes, if any) to the request chain, then waits only
   * when too much is unacknowledged. A failed request fails every later `send`.
   */
  async send(): Promise<void> {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    this.sendWhenDone = false;
    const bytes = this.buffer.bytes;
    const count = this.buffer.count;
    const commit = this.pendingCommit;
    const batches = count ? this.buffer.take() : [];
    this.pendingCommit = null;
    if (count === 0 && !commit) return;
    this.inFlightBytes += bytes;
    this.inFlight++;
    this.sending = this.sending.then(async () => {
      if (this.failure) return;
      try {
        if (count) await this.produce(batches, count);
        if (commit) {
          this.opts.confirm(commit.endLsn);
          this.opts.onCommit?.({ lsn: commit.endLsn, commitTime: commit.commitTime, ends: this.ends });
        }
      } catch (err) {
        this.failure = err instanceof Error ? err : new Error(String(err));
      } finally {
        this.inFlightBytes -= bytes;
        this.inFlight--;
        if (this.inFlight === 0 && this.sendWhenDone && !this.inTransaction()) {
          this.sendWhenDone = false;
          void this.send().catch(() => undefined);
        }
      }
    });
    if (this.inFlightBytes > MAX_IN_FLIGHT_BYTES) await this.sending;
    if (this.failure) throw this.failure;
  }

  /** Sends everything buffered and resolves once Kafka acknowledged all of it (`ends` then holds it). */
  async drain(): Promise<void> {
    await this.send();
    await this.sending;
    if (this.failure) throw this.failure;
  }

  /** Sends one request's batches and resolves when Kafka acknowledged all of them. */
  private async produce(
    batches: Array<{ topic: string; batches: FramedBatch[] }>,
    count: number,
  ): Promise<void> {
    const ends = await this.opts.producer.publishFramed(batches);
    for (const [k, end] of ends) {
      if (!this.tableTopics.has(k.slice(0, k.lastIndexOf(':')))) continue;
      if (end > (this.ends.get(k) ?? 0n)) this.ends.set(k, end);
    }
    this.published += count;
  }
}
