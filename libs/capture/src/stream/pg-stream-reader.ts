import type { Client } from 'pg';
import { ConnectionError, ObjectError, PgferryError, TransientError, type Logger } from '@pgferry/core';
import {
  classifyPgError,
  connect,
  describeEndpoint,
  quoteIdent,
  quoteLiteral,
  type Endpoint,
  PIPELINE_SESSION_SQL,
  formatLsn,
  type Lsn,
  parseServerFrame,
  standbyStatusUpdate,
  type ServerFrame,
} from '@pgferry/pg';
import type { ChangeProcessor, ChangeStreamReader } from '../interface';
import type { ChangeEvent } from '../change-event';
import { PgoutputDecoder } from './pgoutput-decoder';

export interface PgStreamReaderOptions {
  endpoint: Endpoint;
  slot: string;
  publication: string;
  /**
   * Stream transactions that commit after this position: the last confirmed LSN, or the
   * snapshot's consistent point on the first run. The server never goes back before the slot's
   * own confirmed position, whatever is given.
   */
  startLsn: Lsn;
  /** Status update to the server at least this often (ms); default 10 s, or a third of a shorter wal_sender_timeout. */
  statusIntervalMs?: number;
  /**
   * A stream that received nothing from the server for this long (ms) while not paused is dead
   * (a silent network drop): it fails with a ConnectionError and is opened again. Default: the
   * server's wal_sender_timeout (60 s when it is 0, never under 3 status intervals). Each status
   * update asks the server for a reply, so a live server answers within a round trip.
   */
  silenceLimitMs?: number;
  /**
   * Memory for in-progress streamed transactions before they spill to disk (bytes; default 8 MB:
   * the spilled part is read back from the page cache, and 16 MB kept the capture above 300 MB
   * resident through a 2M-row UPDATE).
   */
  spoolMemoryBytes?: number;
  /** Folder for spill files (default: the OS temp folder). */
  spoolDir?: string;
  /** Frames read ahead of the processor before the socket is paused. */
  readAhead?: number;
  /** pgoutput protocol: 2 (streaming of large in-progress transactions) where the server has it. */
  protocol?: 1 | 2;
  /** Sets logical_decoding_work_mem for this stream (e.g. '64MB'): above it the server streams. */
  logicalDecodingWorkMem?: string;
  logger?: Logger;
}

const CONFIRM_THROTTLE_MS = 200;

/**
 * Reads the task's slot with pgoutput over a replication connection (`replication=database`,
 * START_REPLICATION ... LOGICAL) and hands decoded ChangeEvents to a processor, one at a time.
 *
 * Acknowledgement contract: the flushed position sent to the server is only ever what the
 * caller passed to `confirm` (or `startLsn`). Status updates go out when the server asks, every
 * `statusIntervalMs`, and shortly after each `confirm`, so the connection stays alive and the
 * slot advances exactly as far as the caller has stored.
 *
 * Flow control: frames are read ahead up to `readAhead`; beyond it the socket is paused until
 * the processor catches up (status updates keep going meanwhile). Streamed transactions are
 * held in a bounded spool until their commit (see PgoutputDecoder).
 */
export class PgStreamReader implements ChangeStreamReader {
  private client: Client | null = null;
  private confirmed: Lsn;
  private received: Lsn;
  private lastStatusAt = 0;
  private lastFrameAt = 0;
  private confirmTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private running = false;
  private queue: ServerFrame[] = [];
  private paused = false;
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly context: string;

  constructor(private readonly options: PgStreamReaderOptions) {
    this.confirmed = options.startLsn;
    this.received = options.startLsn;
    this.context = `streaming replication slot ${options.slot} (publication ${options.publication}) from source ${describeEndpoint(options.endpoint)}`;
  }

  /** The highest position confirmed so far (what the server has been or will be told). */
  get confirmedLsn(): Lsn {
    return this.confirmed;
  }

  confirm(lsn: Lsn): void {
    if (lsn <= this.confirmed) return;
    this.confirmed = lsn;
    if (this.confirmTimer) return;
    const wait = Math.max(0, this.lastStatusAt + CONFIRM_THROTTLE_MS - Date.now());
    this.confirmTimer = setTimeout(() => {
      this.confirmTimer = null;
      this.sendStatus(false);
    }, wait);
  }

  async run(processor: ChangeProcessor): Promise<void> {
    if (this.running || this.stopped)
      throw new Error('a PgStreamReader runs once; make a new one to restart');
    this.running = true;
    const o = this.options;
    let decoder: PgoutputDecoder | null = null;
    try {
      const client = await connect(o.endpoint, 'source', {
        applicationName: `pgferry ${o.slot}`,
        replication: 'database',
      });
      this.client = client;
      const { protocol, typeNames, walSenderTimeoutMs } = await this.prepare(client);
      // Well inside wal_sender_timeout, which ends a stream whose client is silent that long.
      const statusMs =
        o.statusIntervalMs ??
        (walSenderTimeoutMs > 0 ? Math.min(10_000, Math.max(1000, walSenderTimeoutMs / 3)) : 10_000);
      const silenceMs =
        o.silenceLimitMs ?? Math.max(3 * statusMs, walSenderTimeoutMs > 0 ? walSenderTimeoutMs : 60_000);
      decoder = new PgoutputDecoder(
        { memoryLimitBytes: o.spoolMemoryBytes ?? 8 << 20, dir: o.spoolDir },
        typeNames,
      );
      const streaming = this.start(client, protocol);
      o.logger?.info(
        { slot: o.slot, publication: o.publication, startLsn: formatLsn(o.startLsn), protocol },
        'streaming changes',
      );
      this.lastFrameAt = Date.now();
      this.statusTimer = setInterval(() => {
        // Paused, the socket is not read: silence is ours, not the server's.
        if (!this.paused && Date.now() - this.lastFrameAt > silenceMs)
          return this.fail(
            new ConnectionError(
              `${this.context}: nothing received from the server for ${Math.round((Date.now() - this.lastFrameAt) / 1000)} s (limit ${Math.round(silenceMs / 1000)} s, from wal_sender_timeout): the connection is dead`,
              { code: 'STREAM_SILENT' },
            ),
          );
        this.sendStatus(true);
      }, statusMs);
      streaming.then(
        () => this.fail(new ConnectionError(`${this.context}: the server ended the stream`)),
        (err) => this.fail(err),
      );
      await this.loop(decoder, processor);
    } catch (err) {
      throw this.classify(err);
    } finally {
      await this.shutdown();
      await decoder?.close();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.confirmTimer) clearTimeout(this.confirmTimer);
    this.statusTimer = this.confirmTimer = null;
    const client = this.client;
    if (!client) return;
    // A last status update, so the slot knows everything confirmed before the stream closes.
    this.sendStatus(false);
    this.client = null;
    await client.end().catch(() => undefined);
  }

  private fail(err: unknown): void {
    if (this.stopped || this.failure) return;
    this.failure = this.classify(err);
    this.wake?.();
  }

  private async loop(decoder: PgoutputDecoder, processor: ChangeProcessor): Promise<void> {
    const low = Math.floor((this.options.readAhead ?? 2000) / 2);
    const emit = (e: ChangeEvent) => processor.process(e);
    const prepare = processor.prepare?.bind(processor);
    for (;;) {
      if (this.stopped) return;
      if (this.failure) throw this.failure;
      const frame = this.queue.shift();
      if (!frame) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      if (this.paused && this.queue.length <= low) this.resume();
      if (frame.tag === 'xlog') {
        const pending = decoder.decode(frame.dataStart, frame.data, emit, prepare);
        if (pending) await pending;
      } else if (!decoder.inTransaction) {
        await processor.process({ kind: 'keepalive', lsn: frame.walEnd });
      }
    }
  }

  /**
   * Server version, session settings, type names; checks the slot and the publication. A
   * replication connection takes only the simple query protocol: no bind parameters.
   */
  private async prepare(
    client: Client,
  ): Promise<{ protocol: 1 | 2; typeNames: Map<number, string>; walSenderTimeoutMs: number }> {
    const o = this.options;
    const { rows } = await client.query(
      `SELECT current_setting('server_version_num')::int AS version,
              (SELECT setting::int FROM pg_settings WHERE name = 'wal_sender_timeout') AS wal_sender_timeout,
              (SELECT count(*) FROM pg_publication WHERE pubname = ${quoteLiteral(o.publication)})::int AS publications`,
    );
    if (rows[0].publications === 0)
      throw new ObjectError(
        `${this.context}: publication ${quoteIdent(o.publication)} does not exist; run the task's setup again (it creates the publication over the selected tables) or create it with CREATE PUBLICATION`,
      );
    await this.checkSlot(client);
    await client.query(PIPELINE_SESSION_SQL);
    if (o.logicalDecodingWorkMem)
      await client.query(`SET logical_decoding_work_mem = ${quoteLiteral(o.logicalDecodingWorkMem)}`);
    const types = await client.query<{ oid: number; name: string }>(
      `SELECT oid::int8 AS oid, format_type(oid, NULL) AS name FROM pg_type WHERE typtype <> 'p'`,
    );
    const typeNames = new Map(types.rows.map((r) => [Number(r.oid), r.name]));
    const protocol = rows[0].version >= 140000 ? (o.protocol ?? 2) : 1;
    return { protocol, typeNames, walSenderTimeoutMs: Number(rows[0].wal_sender_timeout ?? 0) };
  }

  /** ObjectError for a missing or foreign slot; TransientError when our own previous stream still holds it. */
  private async checkSlot(client: Client): Promise<void> {
    const o = this.options;
    const { rows } = await client.query<{
      plugin: string | null;
      database: string | null;
      active_pid: number | null;
      application_name: string | null;
    }>(
      `SELECT s.plugin, s.database, s.active_pid, a.application_name FROM pg_replication_slots s
         LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = ${quoteLiteral(o.slot)}`,
    );
    if (rows.length === 0)
      throw new ObjectError(
        `${this.context}: replication slot ${o.slot} does not exist, so the changes since the task's snapshot are gone; start the task over with a new full load (it creates the slot), never a bare CREATE of the slot`,
      );
    const s = rows[0];
    if (s.plugin !== 'pgoutput' || s.database !== o.endpoint.database)
      throw new ObjectError(
        `${this.context}: replication slot ${o.slot} belongs to plugin ${s.plugin} on database ${s.database}, not pgoutput on ${o.endpoint.database}; it is not this task's slot: drop or rename it, or fix the task name`,
      );
    if (s.active_pid !== null) throw this.slotInUse(s.active_pid, s.application_name);
  }

  private slotInUse(pid: number | null, app: string | null): Error {
    const o = this.options;
    if (app === `pgferry ${o.slot}`)
      return new TransientError(
        `${this.context}: replication slot ${o.slot} is still held by a previous stream of this task (process ${pid}); it is released once the server notices that stream is gone`,
        { code: '55006' },
      );
    const fix = pid === null ? '' : `, or end it with SELECT pg_terminate_backend(${pid})`;
    return new ObjectError(
      `${this.context}: replication slot ${o.slot} is in use by process ${pid ?? '(unknown)'}${app ? ` (${app})` : ''}; stop that consumer${fix}`,
      { code: '55006' },
    );
  }

  private start(client: Client, protocol: 1 | 2): Promise<unknown> {
    const o = this.options;
    const opts = [
      `proto_version '${protocol}'`,
      `publication_names ${quoteLiteral(quoteIdent(o.publication))}`,
    ];
    if (protocol >= 2) opts.push(`streaming 'on'`);
    const conn = (client as unknown as { connection: ReplicationConnection }).connection;
    conn.on('copyData', ({ chunk }: { chunk: Buffer }) => this.onFrame(chunk));
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(o.slot)} LOGICAL ${formatLsn(o.startLsn)} (${opts.join(', ')})`,
    );
  }

  private onFrame(chunk: Buffer): void {
    this.lastFrameAt = Date.now();
    let frame: ServerFrame;
    try {
      // pg reuses its read buffer: keep a copy, the frame may wait in the queue or a spool.
      frame = parseServerFrame(Buffer.from(chunk));
    } catch (err) {
      this.fail(err);
      return;
    }
    if (frame.tag === 'keepalive') {
      if (frame.walEnd > this.received) this.received = frame.walEnd;
      if (frame.replyRequested) this.sendStatus(false);
    } else if (frame.dataStart > this.received) this.received = frame.dataStart;
    this.queue.push(frame);
    if (!this.paused && this.queue.length >= (this.options.readAhead ?? 2000)) this.pause();
    this.wake?.();
  }

  private socket(): { pause(): void; resume(): void } | undefined {
    return (this.client as unknown as { connection?: ReplicationConnection } | null)?.connection?.stream;
  }

  private pause(): void {
    this.paused = true;
    this.socket()?.pause();
  }

  private resume(): void {
    this.paused = false;
    this.socket()?.resume();
  }

  private sendStatus(replyRequested: boolean): void {
    const conn = (this.client as unknown as { connection?: ReplicationConnection } | null)?.connection;
    if (!conn) return;
    this.lastStatusAt = Date.now();
    const written = this.received > this.confirmed ? this.received : this.confirmed;
    try {
      conn.sendCopyFromChunk(
        standbyStatusUpdate(written, this.confirmed, this.confirmed, Date.now(), replyRequested),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  private classify(err: unknown): Error {
    if (err instanceof PgferryError) return err;
    const e = err as { code?: string; message?: string };
    const msg = e?.message ?? '';
    if (e?.code === '42704' && /publication/i.test(msg))
      return new ObjectError(
        `${this.context}: ${msg}; run the task's setup again (it creates the publication over the selected tables)`,
        { cause: err, code: e.code },
      );
    if (e?.code === '42704' && /replication slot/i.test(msg))
      return new ObjectError(
        `${this.context}: ${msg}; the changes since the task's snapshot are gone: start the task over with a new full load`,
        { cause: err, code: e.code },
      );
    if (e?.code === '55006') {
      const pid = /PID (\d+)/i.exec(msg);
      return this.slotInUse(pid ? Number(pid[1]) : null, null);
    }
    return classifyPgError(err, this.context);
  }
}

/** The parts of pg's internal Connection a replication stream needs. */
interface ReplicationConnection {
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}
