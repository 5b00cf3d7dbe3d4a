import { DataError } from '@pgferry/core';
import { UNCHANGED_TOAST } from '../change-event';
import { formatLsn, parseLsn, parseServerFrame, standbyStatusUpdate } from '@pgferry/pg';
import { parsePgoutput, PgoutputFormatError, streamedXid } from './pgoutput-parser';

/** Byte-level fixtures, written out field by field as the protocol documentation lists them. */
class Bytes {
  private parts: Buffer[] = [];
  u8(v: number | string) {
    this.parts.push(Buffer.from([typeof v === 'string' ? v.charCodeAt(0) : v]));
    return this;
  }
  i16(v: number) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  i64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  cstr(s: string) {
    this.parts.push(Buffer.from(s, 'utf8'), Buffer.from([0]));
    return this;
  }
  text(s: string) {
    const b = Buffer.from(s, 'utf8');
    return this.u8('t').i32(b.length).raw(b);
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  get buf() {
    return Buffer.concat(this.parts);
  }
}

// 2024-01-02 03:04:05.678901 UTC in microseconds since 2000-01-01.
const TS_US = 757_479_845_678_901n;
const TS = new Date('2024-01-02T03:04:05.678Z');

describe('LSN text', () => {
  it.each([
    ['0/0', 0n],
    ['0/16B3748', 0x16b3748n],
    ['16/B374D848', 0x16b374d848n],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn],
  ])('%s round-trips', (text, value) => {
    expect(parseLsn(text)).toBe(value);
    expect(formatLsn(value)).toBe(text);
  });
  it('refuses other text as bad data, saying what an LSN looks like', () => {
    expect(() => parseLsn('16B374D848')).toThrow(DataError);
    expect(() => parseLsn('16B374D848')).toThrow(
      'not an LSN: "16B374D848" (expected two hex numbers split by "/" as PostgreSQL prints them, e.g. 0/16B3748)',
    );
  });
});

describe('pgoutput parser', () => {
  it('Begin and Commit', () => {
    const begin = new Bytes().u8('B').i64(0x1_0000_0010n).i64(TS_US).u32(4000000000).buf;
    expect(parsePgoutput(begin)).toEqual({
      tag: 'begin',
      finalLsn: 0x1_0000_0010n,
      commitTime: TS,
      xid: 4000000000,
    });
    const commit = new Bytes().u8('C').u8(0).i64(0x10n).i64(0x38n).i64(TS_US).buf;
    expect(parsePgoutput(commit)).toEqual({
      tag: 'commit',
      flags: 0,
      lsn: 0x10n,
      endLsn: 0x38n,
      commitTime: TS,
    });
  });

  it('Relation with key flags, replica identity and an empty namespace for pg_catalog', () => {
    const rel = new Bytes()
      .u8('R')
      .u32(16384)
      .cstr('My Schema')
      .cstr('tbl "x"')
      .u8('f')
      .i16(2)
      .u8(1)
      .cstr('id')
      .u32(23)
      .i32(-1)
      .u8(0)
      .cstr('näme')
      .u32(1043)
      .i32(14).buf;
    expect(parsePgoutput(rel)).toEqual({
      tag: 'relation',
      xid: undefined,
      oid: 16384,
      schema: 'My Schema',
      table: 'tbl "x"',
      replicaIdentity: 'full',
      columns: [
        { flags: 1, name: 'id', typeOid: 23, typeMod: -1 },
        { flags: 0, name: 'näme', typeOid: 1043, typeMod: 14 },
      ],
    });
    const catalogRel = new Bytes().u8('R').u32(1).cstr('').cstr('t').u8('d').i16(0).buf;
    expect(parsePgoutput(catalogRel)).toMatchObject({ schema: 'pg_catalog', replicaIdentity: 'default' });
  });

  it('Insert with text, NULL and an empty string', () => {
    const ins = new Bytes().u8('I').u32(16384).u8('N').i16(3).text('1').u8('n').text('').buf;
    expect(parsePgoutput(ins)).toEqual({
      tag: 'insert',
      xid: undefined,
      relationOid: 16384,
      new: ['1', null, ''],
    });
  });

  it('Update keeps an unchanged TOAST value apart from NULL', () => {
    const upd = new Bytes().u8('U').u32(7).u8('N').i16(3).text('1').u8('u').u8('n').buf;
    const m = parsePgoutput(upd);
    expect(m).toEqual({ tag: 'update', xid: undefined, relationOid: 7, new: ['1', UNCHANGED_TOAST, null] });
    expect(m).not.toHaveProperty('old');
  });

  it('Update with the old key (K) and with the old row (O)', () => {
    const key = new Bytes()
      .u8('U')
      .u32(7)
      .u8('K')
      .i16(2)
      .text('1')
      .u8('n')
      .u8('N')
      .i16(2)
      .text('2')
      .text('b').buf;
    expect(parsePgoutput(key)).toMatchObject({ old: ['1', null], oldKind: 'key', new: ['2', 'b'] });
    const full = new Bytes()
      .u8('U')
      .u32(7)
      .u8('O')
      .i16(2)
      .text('1')
      .u8('u')
      .u8('N')
      .i16(2)
      .text('1')
      .text('c').buf;
    expect(parsePgoutput(full)).toMatchObject({
      old: ['1', UNCHANGED_TOAST],
      oldKind: 'full',
      new: ['1', 'c'],
    });
  });

  it('Delete with the old key and with the old row', () => {
    const key = new Bytes().u8('D').u32(7).u8('K').i16(2).text('5').u8('n').buf;
    expect(parsePgoutput(key)).toEqual({
      tag: 'delete',
      xid: undefined,
      relationOid: 7,
      oldKind: 'key',
      old: ['5', null],
    });
    const full = new Bytes().u8('D').u32(7).u8('O').i16(2).text('5').text('x').buf;
    expect(parsePgoutput(full)).toMatchObject({ oldKind: 'full', old: ['5', 'x'] });
  });

  it('Truncate with its options', () => {
    const t = new Bytes().u8('T').i32(2).u8(3).u32(10).u32(11).buf;
    expect(parsePgoutput(t)).toEqual({
      tag: 'truncate',
      xid: undefined,
      relationOids: [10, 11],
      cascade: true,
      restartIdentity: true,
    });
    expect(parsePgoutput(new Bytes().u8('T').i32(1).u8(0).u32(10).buf)).toMatchObject({
      cascade: false,
      restartIdentity: false,
    });
  });

  it('Type, Origin and Message', () => {
    expect(parsePgoutput(new Bytes().u8('Y').u32(20000).cstr('public').cstr('mood').buf)).toEqual({
      tag: 'type',
      xid: undefined,
      oid: 20000,
      schema: 'public',
      name: 'mood',
    });
    expect(parsePgoutput(new Bytes().u8('O').i64(5n).cstr('node1').buf)).toEqual({
      tag: 'origin',
      lsn: 5n,
      name: 'node1',
    });
    const msg = new Bytes().u8('M').u8(1).i64(9n).cstr('p').i32(2).raw(Buffer.from('hi')).buf;
    expect(parsePgoutput(msg)).toEqual({
      tag: 'message',
      xid: undefined,
      transactional: true,
      lsn: 9n,
      prefix: 'p',
      content: Buffer.from('hi'),
    });
  });

  it('streaming messages (protocol 2) and the xid inside a streamed block', () => {
    expect(parsePgoutput(new Bytes().u8('S').u32(700).u8(1).buf)).toEqual({
      tag: 'streamStart',
      xid: 700,
      firstSegment: true,
    });
    expect(parsePgoutput(new Bytes().u8('E').buf)).toEqual({ tag: 'streamStop' });
    expect(parsePgoutput(new Bytes().u8('c').u32(700).u8(0).i64(0x20n).i64(0x48n).i64(TS_US).buf)).toEqual({
      tag: 'streamCommit',
      xid: 700,
      flags: 0,
      lsn: 0x20n,
      endLsn: 0x48n,
      commitTime: TS,
    });
    expect(parsePgoutput(new Bytes().u8('A').u32(700).u32(701).buf)).toEqual({
      tag: 'streamAbort',
      xid: 700,
      subxid: 701,
    });
    const ins = new Bytes().u8('I').u32(701).u32(7).u8('N').i16(1).text('x').buf;
    expect(streamedXid(ins)).toBe(701);
    expect(parsePgoutput(ins, true)).toEqual({ tag: 'insert', xid: 701, relationOid: 7, new: ['x'] });
    expect(streamedXid(new Bytes().u8('c').u32(700).buf)).toBeUndefined();
  });

  it('rejects truncated, trailing, binary and unknown input naming the problem', () => {
    const ins = new Bytes().u8('I').u32(7).u8('N').i16(1).text('abc').buf;
    expect(() => parsePgoutput(ins.subarray(0, ins.length - 1))).toThrow(/ends at byte/);
    expect(() => parsePgoutput(Buffer.concat([ins, Buffer.from([0])]))).toThrow(/trailing/);
    expect(() => parsePgoutput(new Bytes().u8('I').u32(7).u8('N').i16(1).u8('b').i32(1).u8(1).buf)).toThrow(
      /binary/,
    );
    expect(() => parsePgoutput(new Bytes().u8('Z').buf)).toThrow(PgoutputFormatError);
    expect(() => parsePgoutput(new Bytes().u8('Z').buf)).toThrow(DataError);
  });
});

describe('replication frames', () => {
  it('XLogData and keepalive', () => {
    const w = new Bytes().u8('w').i64(0x100n).i64(0x200n).i64(TS_US).raw(Buffer.from('Bxyz')).buf;
    expect(parseServerFrame(w)).toEqual({
      tag: 'xlog',
      dataStart: 0x100n,
      walEnd: 0x200n,
      data: Buffer.from('Bxyz'),
    });
    const k = new Bytes().u8('k').i64(0x300n).i64(TS_US).u8(1).buf;
    expect(parseServerFrame(k)).toEqual({
      tag: 'keepalive',
      walEnd: 0x300n,
      sendTime: TS,
      replyRequested: true,
    });
    for (const [bad, what] of [
      [Buffer.from('x'), "unknown frame type 0x78 (the server sends 'w' and 'k')"],
      [w.subarray(0, 24), 'XLogData frame of 24 bytes, needs at least 25'],
      [k.subarray(0, 17), 'keepalive frame of 17 bytes, needs 18'],
    ] as const) {
      expect(() => parseServerFrame(bad)).toThrow(DataError);
      expect(() => parseServerFrame(bad)).toThrow(
        `replication stream: ${what}; the server, or a proxy between it and pgferry, sent a broken frame`,
      );
    }
  });

  it('standby status update carries written, flushed, applied and the time', () => {
    const now = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
    const r = standbyStatusUpdate(0x30n, 0x20n, 0x20n, now, true);
    expect(r).toEqual(
      new Bytes().u8('r').i64(0x30n).i64(0x20n).i64(0x20n).i64(757_479_845_678_000n).u8(1).buf,
    );
  });
});
