import { DataError } from '@pgferry/core';
import type { Lsn } from '../lsn';

/**
 * The streaming replication sub-protocol carried in CopyData messages once START_REPLICATION has
 * switched the connection to CopyBoth (PostgreSQL "Streaming Replication Protocol"). Pure.
 */
export type ServerFrame =
  /**
   * 'w' XLogData: WAL position of the data, the server's WAL end, pgoutput bytes. Its send time
   * is not read: nothing uses it, and a Date per change costs the capture (one frame each).
   */
  | { tag: 'xlog'; dataStart: Lsn; walEnd: Lsn; data: Buffer }
  /** 'k' Primary keepalive: WAL end, send time, and whether the server wants a reply now. */
  | { tag: 'keepalive'; walEnd: Lsn; sendTime: Date; replyRequested: boolean };

/** Microseconds from 1970-01-01 to 2000-01-01, the PostgreSQL epoch of protocol timestamps. */
const PG_EPOCH_US = 946_684_800_000_000n;

export function pgTimestampToDate(us: bigint): Date {
  return new Date(Number((us + PG_EPOCH_US) / 1000n));
}

export function parseServerFrame(buf: Buffer): ServerFrame {
  const tag = buf[0];
  if (tag === 0x77 /* 'w' */) {
    if (buf.length < 25) throw brokenFrame(`XLogData frame of ${buf.length} bytes, needs at least 25`);
    return {
      tag: 'xlog',
      dataStart: buf.readBigUInt64BE(1),
      walEnd: buf.readBigUInt64BE(9),
      data: buf.subarray(25),
    };
  }
  if (tag === 0x6b /* 'k' */) {
    if (buf.length < 18) throw brokenFrame(`keepalive frame of ${buf.length} bytes, needs 18`);
    return {
      tag: 'keepalive',
      walEnd: buf.readBigUInt64BE(1),
      sendTime: pgTimestampToDate(buf.readBigInt64BE(9)),
      replyRequested: buf[17] === 1,
    };
  }
  throw brokenFrame(`unknown frame type 0x${(tag ?? 0).toString(16)} (the server sends 'w' and 'k')`);
}

function brokenFrame(what: string): DataError {
  return new DataError(
    `replication stream: ${what}; the server, or a proxy between it and pgferry, sent a broken frame`,
  );
}

/** Milliseconds between 1970-01-01 and 2000-01-01. */
const PG_EPOCH_MS = 946_684_800_000;

/**
 * 'r' Standby status update. For a logical slot the server takes `flushed` as the slot's
 * confirmed_flush_lsn (changes before it are never sent again and their WAL can be recycled);
 * `written` and `applied` only feed pg_stat_replication. All three are "last byte + 1"
 * positions, which is what a commit's end LSN already is.
 */
export function standbyStatusUpdate(
  written: Lsn,
  flushed: Lsn,
  applied: Lsn,
  now: number = Date.now(),
  replyRequested = false,
): Buffer {
  const out = Buffer.alloc(34);
  out[0] = 0x72; // 'r'
  out.writeBigUInt64BE(written, 1);
  out.writeBigUInt64BE(flushed, 9);
  out.writeBigUInt64BE(applied, 17);
  out.writeBigInt64BE(BigInt(now - PG_EPOCH_MS) * 1000n, 25);
  out[33] = replyRequested ? 1 : 0;
  return out;
}
