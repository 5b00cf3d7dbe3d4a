import { DataError } from '@pgferry/core';
import { UNCHANGED_TOAST, type ReplicaIdentity, type RowImage } from '../change-event';
import type { Lsn } from '@pgferry/pg';
import { pgTimestampToDate } from '@pgferry/pg';

/**
 * Parser for the pgoutput logical replication messages (PostgreSQL "Logical Replication Message
 * Formats", protocol versions 1 and 2). Pure: bytes in, messages out; relation OIDs are not
 * resolved here (the decoder owns the relation cache). Values are PostgreSQL text forms;
 * pgferry never asks for binary output.
 *
 * Inside a streamed block (between Stream Start and Stream Stop, protocol 2) the data, relation,
 * type and message messages carry the (sub)transaction's xid right after the tag: the caller
 * says whether a block is open (`inStream`).
 */

export interface RawColumn {
  /** Bit 1: part of the replica identity key. */
  flags: number;
  name: string;
  typeOid: number;
  typeMod: number;
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: Lsn; commitTime: Date; xid: number }
  | { tag: 'commit'; flags: number; lsn: Lsn; endLsn: Lsn; commitTime: Date }
  | { tag: 'origin'; lsn: Lsn; name: string }
  | {
      tag: 'relation';
      xid?: number;
      oid: number;
      schema: string;
      table: string;
      replicaIdentity: ReplicaIdentity;
      columns: RawColumn[];
    }
  | { tag: 'type'; xid?: number; oid: number; schema: string; name: string }
  | { tag: 'insert'; xid?: number; relationOid: number; new: RowImage }
  | {
      tag: 'update';
      xid?: number;
      relationOid: number;
      old?: RowImage;
      oldKind?: 'key' | 'full';
      new: RowImage;
    }
  | { tag: 'delete'; xid?: number; relationOid: number; old: RowImage; oldKind: 'key' | 'full' }
  | {
      tag: 'truncate';
      xid?: number;
      relationOids: number[];
      cascade: boolean;
      restartIdentity: boolean;
    }
  | { tag: 'message'; xid?: number; transactional: boolean; lsn: Lsn; prefix: string; content: Buffer }
  | { tag: 'streamStart'; xid: number; firstSegment: boolean }
  | { tag: 'streamStop' }
  | { tag: 'streamCommit'; xid: number; flags: number; lsn: Lsn; endLsn: Lsn; commitTime: Date }
  | { tag: 'streamAbort'; xid: number; subxid: number };

/**
 * A pgoutput message that breaks the format, or one out of its place in the stream: bad data
 * from the server (never retried; the capture stops). The decoder adds the message's LSN.
 */
export class PgoutputFormatError extends DataError {
  constructor(message: string) {
    super(`pgoutput: ${message}`);
    this.name = 'PgoutputFormatError';
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new PgoutputFormatError(
        `message '${String.fromCharCode(this.buf[0])}' ends at byte ${this.buf.length}, needed ${this.pos + n}`,
      );
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  i16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  time(): Date {
    return pgTimestampToDate(this.i64());
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new PgoutputFormatError('unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  text(n: number): string {
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  done(): void {
    if (this.pos !== this.buf.length)
      throw new PgoutputFormatError(
        `message '${String.fromCharCode(this.buf[0])}' has ${this.buf.length - this.pos} trailing bytes`,
      );
  }
}

function replicaIdentity(code: number): ReplicaIdentity {
  switch (code) {
    case 0x64:
      return 'default';
    case 0x6e:
      return 'nothing';
    case 0x66:
      return 'full';
    case 0x69:
      return 'index';
    default:
      throw new PgoutputFormatError(`unknown replica identity '${String.fromCharCode(code)}'`);
  }
}

/** TupleData: Int16 count, then per column 'n' (NULL), 'u' (unchanged TOAST), 't' text, 'b' binary. */
function tuple(r: Reader): RowImage {
  const n = r.i16();
  const row: RowImage = new Array(n);
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    switch (kind) {
      case 0x6e: // 'n'
        row[i] = null;
        break;
      case 0x75: // 'u'
        row[i] = UNCHANGED_TOAST;
        break;
      case 0x74: // 't'
        row[i] = r.text(r.i32());
        break;
      case 0x62: // 'b': only with the binary option, which pgferry never sets
        throw new PgoutputFormatError('binary column value received, but binary output was not requested');
      default:
        throw new PgoutputFormatError(`unknown column value kind '${String.fromCharCode(kind)}'`);
    }
  }
  return row;
}

function oldKindOf(code: number): 'key' | 'full' {
  if (code === 0x4b) return 'key'; // 'K'
  if (code === 0x4f) return 'full'; // 'O'
  throw new PgoutputFormatError(
    `expected 'K' or 'O' before an old tuple, got '${String.fromCharCode(code)}'`,
  );
}

/** Tags that carry a transaction id inside a streamed block. */
const STREAMED_TAGS = new Set([0x49, 0x55, 0x44, 0x54, 0x52, 0x59, 0x4d]);

/** The (sub)transaction id of a message inside a streamed block, without parsing the rest. */
export function streamedXid(buf: Buffer): number | undefined {
  return STREAMED_TAGS.has(buf[0]) && buf.length >= 5 ? buf.readUInt32BE(1) : undefined;
}

export function parsePgoutput(buf: Buffer, inStream = false): PgoutputMessage {
  if (buf.length === 0) throw new PgoutputFormatError('empty message');
  const r = new Reader(buf);
  const tag = r.u8();
  const xid = inStream && STREAMED_TAGS.has(tag) ? r.u32() : undefined;
  let msg: PgoutputMessage;
  switch (tag) {
    case 0x42: // 'B' Begin: final LSN, commit time, xid
      msg = { tag: 'begin', finalLsn: r.u64(), commitTime: r.time(), xid: r.u32() };
      break;
    case 0x43: // 'C' Commit: flags, commit LSN, end LSN, commit time
      msg = { tag: 'commit', flags: r.u8(), lsn: r.u64(), endLsn: r.u64(), commitTime: r.time() };
      break;
    case 0x4f: // 'O' Origin
      msg = { tag: 'origin', lsn: r.u64(), name: r.cstring() };
      break;
    case 0x52: {
      // 'R' Relation: oid, namespace ('' for pg_catalog), name, replica identity, columns
      const oid = r.u32();
      const schema = r.cstring();
      const table = r.cstring();
      const ident = replicaIdentity(r.u8());
      const n = r.i16();
      const columns: RawColumn[] = [];
      for (let i = 0; i < n; i++)
        columns.push({ flags: r.u8(), name: r.cstring(), typeOid: r.u32(), typeMod: r.i32() });
      msg = {
        tag: 'relation',
        xid,
        oid,
        schema: schema || 'pg_catalog',
        table,
        replicaIdentity: ident,
        columns,
      };
      break;
    }
    case 0x59: // 'Y' Type
      msg = { tag: 'type', xid, oid: r.u32(), schema: r.cstring(), name: r.cstring() };
      break;
    case 0x49: {
      // 'I' Insert: relation, 'N', new tuple
      const relationOid = r.u32();
      const n = r.u8();
      if (n !== 0x4e) throw new PgoutputFormatError(`insert: expected 'N', got '${String.fromCharCode(n)}'`);
      msg = { tag: 'insert', xid, relationOid, new: tuple(r) };
      break;
    }
    case 0x55: {
      // 'U' Update: relation, optional 'K' key / 'O' old tuple, 'N' new tuple
      const relationOid = r.u32();
      let sub = r.u8();
      let old: RowImage | undefined;
      let oldKind: 'key' | 'full' | undefined;
      if (sub !== 0x4e) {
        oldKind = oldKindOf(sub);
        old = tuple(r);
        sub = r.u8();
      }
      if (sub !== 0x4e)
        throw new PgoutputFormatError(`update: expected 'N', got '${String.fromCharCode(sub)}'`);
      msg = { tag: 'update', xid, relationOid, new: tuple(r) };
      if (old) Object.assign(msg, { old, oldKind });
      break;
    }
    case 0x44: {
      // 'D' Delete: relation, 'K' key / 'O' old tuple
      const relationOid = r.u32();
      const oldKind = oldKindOf(r.u8());
      msg = { tag: 'delete', xid, relationOid, oldKind, old: tuple(r) };
      break;
    }
    case 0x54: {
      // 'T' Truncate: count, options (1 cascade, 2 restart identity), relation OIDs
      const n = r.i32();
      const options = r.u8();
      const relationOids: number[] = [];
      for (let i = 0; i < n; i++) relationOids.push(r.u32());
      msg = {
        tag: 'truncate',
        xid,
        relationOids,
        cascade: (options & 1) !== 0,
        restartIdentity: (options & 2) !== 0,
      };
      break;
    }
    case 0x4d: {
      // 'M' Message (pg_logical_emit_message): flags (1 transactional), LSN, prefix, content
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.cstring();
      const content = Buffer.from(r.bytes(r.i32()));
      msg = { tag: 'message', xid, transactional: (flags & 1) !== 0, lsn, prefix, content };
      break;
    }
    case 0x53: // 'S' Stream Start: xid, first segment (1 when the first block of this xid)
      msg = { tag: 'streamStart', xid: r.u32(), firstSegment: r.u8() === 1 };
      break;
    case 0x45: // 'E' Stream Stop
      msg = { tag: 'streamStop' };
      break;
    case 0x63: // 'c' Stream Commit: xid, flags, commit LSN, end LSN, commit time
      msg = {
        tag: 'streamCommit',
        xid: r.u32(),
        flags: r.u8(),
        lsn: r.u64(),
        endLsn: r.u64(),
        commitTime: r.time(),
      };
      break;
    case 0x41: // 'A' Stream Abort: top-level xid, subtransaction xid (equal when the whole transaction aborted)
      msg = { tag: 'streamAbort', xid: r.u32(), subxid: r.u32() };
      // Protocol 4 (parallel apply) appends abort LSN and time; pgferry asks for 2 and ignores them.
      return msg;
    default:
      throw new PgoutputFormatError(
        `unknown message type '${String.fromCharCode(tag)}' (0x${tag.toString(16)})`,
      );
  }
  r.done();
  return msg;
}
