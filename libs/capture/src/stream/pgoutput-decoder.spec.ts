import { DataError } from '@pgferry/core';
import type { ChangeEvent, DataEvent } from '../change-event';
import { PgoutputDecoder } from './pgoutput-decoder';

/** Minimal pgoutput messages (see pgoutput-parser.spec.ts for field-by-field fixtures). */
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const i64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return b;
};
const str = (s: string) => Buffer.concat([Buffer.from(s), Buffer.from([0])]);
const tag = (t: string) => Buffer.from(t);
const xidOf = (xid?: number) => (xid === undefined ? Buffer.alloc(0) : u32(xid));
const relation = (oid: number, col: string, xid?: number) =>
  Buffer.concat([
    tag('R'),
    xidOf(xid),
    u32(oid),
    str('public'),
    str(`t${oid}`),
    tag('d'),
    Buffer.from([0, 1, 1]),
    str(col),
    u32(25),
    u32(0xffffffff),
  ]);
const insert = (oid: number, v: string, xid?: number) => {
  const val = Buffer.from(v);
  return Buffer.concat([
    tag('I'),
    xidOf(xid),
    u32(oid),
    tag('N'),
    Buffer.from([0, 1]),
    tag('t'),
    u32(val.length),
    val,
  ]);
};
const begin = (xid: number) => Buffer.concat([tag('B'), i64(100n), i64(0n), u32(xid)]);
const commit = () => Buffer.concat([tag('C'), Buffer.from([0]), i64(100n), i64(120n), i64(0n)]);
const streamStart = (xid: number) => Buffer.concat([tag('S'), u32(xid), Buffer.from([1])]);
const streamStop = () => tag('E');
const streamCommit = (xid: number) =>
  Buffer.concat([tag('c'), u32(xid), Buffer.from([0]), i64(200n), i64(220n), i64(0n)]);
const streamAbort = (xid: number, subxid: number) => Buffer.concat([tag('A'), u32(xid), u32(subxid)]);

async function decodeAll(messages: Buffer[]) {
  const d = new PgoutputDecoder({ memoryLimitBytes: 1 << 20 });
  const events: ChangeEvent[] = [];
  let lsn = 1n;
  for (const m of messages) await d.decode(lsn++, m, (e) => void events.push(e));
  await d.close();
  return events;
}

const summary = (events: ChangeEvent[]) =>
  events.map((e) =>
    e.kind === 'insert'
      ? `${e.xid}:${e.relation.table}.${e.relation.columns[0].name}=${String(e.new[0])}`
      : e.kind === 'relation'
        ? `R ${e.relation.table}.${e.relation.columns[0].name}`
        : e.kind,
  );

describe('pgoutput decoder', () => {
  it('replays a streamed transaction at its commit, after transactions committed meanwhile, without an aborted subtransaction', async () => {
    const events = await decodeAll([
      streamStart(10),
      relation(1, 'a', 10),
      insert(1, 'kept-1', 10),
      insert(1, 'gone-sub', 11),
      insert(1, 'gone-nested', 12),
      streamStop(),
      begin(20),
      relation(2, 'b'),
      insert(2, 'other'),
      commit(),
      streamStart(10),
      insert(1, 'gone-sub-2', 11),
      streamStop(),
      streamAbort(10, 11), // rolls back 11 and the nested 12 with it
      streamStart(10),
      insert(1, 'kept-2', 10),
      streamStop(),
      streamCommit(10),
    ]);
    expect(summary(events)).toEqual([
      'begin',
      'R t2.b',
      '20:t2.b=other',
      'commit',
      'begin',
      'R t1.a',
      '10:t1.a=kept-1',
      '10:t1.a=kept-2',
      'commit',
    ]);
    expect(events.at(-1)).toMatchObject({
      kind: 'commit',
      xid: 10,
      lsn: 200n,
      endLsn: 220n,
      counts: [{ table: 't1', events: 2 }],
    });
  });

  it('hands streamed changes to prepare as they arrive and replays them prepared at the commit, in their place', async () => {
    const d = new PgoutputDecoder({ memoryLimitBytes: 64 }); // spills to its file at once
    const events: ChangeEvent[] = [];
    const asked: string[] = [];
    // Prepares every value but those starting with "raw"; the bytes are the value's text.
    const prepare = (e: DataEvent, reserved: number) => {
      const v = String(e.kind === 'delete' ? e.old[0] : e.new[0]);
      asked.push(`${e.xid}:${e.relation.columns[0].name}=${v}`);
      if (v.startsWith('raw')) return null;
      const out = Buffer.alloc(reserved + Buffer.byteLength(v));
      out.write(v, reserved);
      return out;
    };
    let lsn = 1n;
    const feed = async (...messages: Buffer[]) => {
      for (const m of messages) await d.decode(lsn++, m, (e) => void events.push(e), prepare);
    };
    await feed(
      streamStart(10),
      relation(1, 'a', 10),
      insert(1, 'p-1', 10),
      insert(1, 'raw-2', 10),
      insert(1, 'p-sub', 11),
      streamStop(),
    );
    // Changes carry the top-level transaction, a subtransaction's too.
    expect(asked).toEqual(['10:a=p-1', '10:a=raw-2', '10:a=p-sub']);
    expect(events).toEqual([]);
    await feed(
      streamAbort(10, 11),
      streamStart(10),
      // After a subtransaction aborted, nothing more of the transaction is prepared.
      insert(1, 'p-3', 10),
      streamStop(),
      streamCommit(10),
    );
    await d.close();
    expect(asked).toHaveLength(3);
    const seen = events.map((e) =>
      e.kind === 'prepared'
        ? `prepared ${e.relation.columns[0].name} ${e.data.toString()} @${e.lsn}`
        : e.kind === 'insert'
          ? `insert ${String(e.new[0])} @${e.lsn}`
          : e.kind,
    );
    expect(seen).toEqual([
      'begin',
      'relation',
      'prepared a p-1 @3',
      'insert raw-2 @4',
      'insert p-3 @9',
      'commit',
    ]);
    expect(events.at(-1)).toMatchObject({ kind: 'commit', counts: [{ table: 't1', events: 3 }] });
  });

  it('drops an aborted streamed transaction, including the relation description it carried', async () => {
    const events = await decodeAll([
      begin(1),
      relation(1, 'old'),
      insert(1, 'x'),
      commit(),
      streamStart(5),
      relation(1, 'new', 5),
      insert(1, 'y', 5),
      streamStop(),
      streamAbort(5, 5),
      begin(6),
      insert(1, 'z'),
      commit(),
    ]);
    expect(summary(events)).toEqual([
      'begin',
      'R t1.old',
      '1:t1.old=x',
      'commit',
      'begin',
      '6:t1.old=z',
      'commit',
    ]);
  });

  it('rejects a change outside a transaction and a relation it never described, as bad data at its LSN', async () => {
    await expect(decodeAll([insert(1, 'x')])).rejects.toThrow(DataError);
    await expect(decodeAll([insert(1, 'x')])).rejects.toThrow(
      'pgoutput: INSERT outside a transaction (the message at 0/1)',
    );
    await expect(decodeAll([begin(1), insert(9, 'x')])).rejects.toThrow(
      'pgoutput: change for relation 9 before its Relation message (the message at 0/2)',
    );
  });
});
