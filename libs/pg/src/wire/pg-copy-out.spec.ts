import { PassThrough } from 'node:stream';
import type { Connection } from 'pg';
import type { CopyRowBatch } from '../copy/copy-rows';
import { CopyOutQuery } from './pg-copy-out';

/** A backend message: code, int32 length (itself and the body), body. */
function message(code: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const COPY_OUT_RESPONSE = message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0]));
const COPY_DONE = message('c');
const AFTER = Buffer.concat([message('C', Buffer.from('COPY 3\0')), message('Z', Buffer.from('T'))]);
const copyData = (row: string | Buffer) => message('d', Buffer.concat([Buffer.from(row), Buffer.from('\n')]));

/** pg's side: a socket with pg's data listener, which records what pg is given back. */
function fakeConnection() {
  const stream = new PassThrough();
  const toPg: Buffer[] = [];
  stream.on('data', (b: Buffer) => toPg.push(Buffer.from(b)));
  const sent: string[] = [];
  const connection = { stream, query: (text: string) => sent.push(text) } as unknown as Connection;
  return { stream, toPg, sent, connection };
}

interface Seen {
  rows: string[];
  raw: Buffer[];
  batches: number[];
  utf8: boolean[];
}

function collect(seen: Seen) {
  return async (batch: CopyRowBatch) => {
    seen.batches.push(batch.length);
    seen.utf8.push(batch.utf8);
    for (let i = 0; i < batch.length; i++) {
      seen.raw.push(Buffer.from(batch.bufs[i].subarray(batch.starts[i], batch.ends[i])));
      seen.rows.push(batch.bufs[i].toString('utf8', batch.starts[i], batch.ends[i]));
    }
  };
}

/** Feeds `bytes` in pieces cut at `cuts`, then lets pg finish the query the way pg's client does. */
async function run(
  bytes: Buffer,
  cuts: number[],
  batchRows: number,
  onBatch?: (b: CopyRowBatch) => Promise<void>,
) {
  const { stream, toPg, sent, connection } = fakeConnection();
  const seen: Seen = { rows: [], raw: [], batches: [], utf8: [] };
  const q = new CopyOutQuery('COPY t TO STDOUT', onBatch ?? collect(seen), batchRows);
  q.submit(connection);
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    stream.write(bytes.subarray(at, cut));
    at = cut;
    await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  const pg = Buffer.concat(toPg);
  if (pg.includes(Buffer.from('Z'))) q.handleReadyForQuery();
  return { seen, pg, sent, done: q.done };
}

describe('CopyOutQuery', () => {
  const rows = ['1\tone\t\\N', '2\ttwo\ttext with ü', `3\t${'x'.repeat(300)}\tlong`];
  const stream = Buffer.concat([COPY_OUT_RESPONSE, ...rows.map(copyData), COPY_DONE, AFTER]);

  it('hands out every row, and pg gets the bytes after CopyDone, whatever the reads are cut at', async () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const { seen, pg, sent, done } = await run(Buffer.from(stream), [cut], 2);
      expect([cut, seen.rows]).toEqual([cut, rows]);
      expect(seen.utf8.every(Boolean)).toBe(true);
      expect(pg.equals(AFTER)).toBe(true);
      expect(sent).toEqual(['COPY t TO STDOUT']);
      await expect(done).resolves.toEqual({
        rows: 3,
        bytes: rows.reduce((a, r) => a + Buffer.byteLength(r) + 1, 0),
      });
    }
  });

  it('reads one byte at a time', async () => {
    const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
    const { seen, pg } = await run(Buffer.from(stream), cuts, 1);
    expect(seen.rows).toEqual(rows);
    expect(seen.batches).toEqual([1, 1, 1]);
    expect(pg.equals(AFTER)).toBe(true);
  });

  it('marks a batch whose rows are not all UTF-8, in one read or cut across reads', async () => {
    const bad = Buffer.from('4\tbad \xc3 lead\tx', 'latin1');
    const bytes = Buffer.concat([COPY_OUT_RESPONSE, copyData(rows[0]), copyData(bad), COPY_DONE, AFTER]);
    for (const cut of [
      0,
      COPY_OUT_RESPONSE.length + 12,
      COPY_OUT_RESPONSE.length + copyData(rows[0]).length + 9,
    ]) {
      const { seen } = await run(Buffer.from(bytes), [cut], 10);
      expect(seen.raw).toEqual([Buffer.from(rows[0]), bad]);
      expect(seen.utf8).toEqual([false]);
    }
  });

  it('hands an ErrorResponse and what follows to pg', async () => {
    const error = message('E', Buffer.from('SERROR\0C57014\0Mcanceled\0\0'));
    const rest = Buffer.concat([error, message('Z', Buffer.from('I'))]);
    const { seen, pg } = await run(Buffer.concat([COPY_OUT_RESPONSE, copyData(rows[0]), rest]), [9], 10);
    expect(seen.rows).toEqual([]);
    expect(pg.equals(rest)).toBe(true);
  });

  it('reads no further while a batch is being handled, and fails with the batch error after the COPY', async () => {
    let release!: () => void;
    const calls: number[] = [];
    const onBatch = async (b: CopyRowBatch) => {
      calls.push(b.length);
      if (calls.length === 1) await new Promise<void>((r) => (release = r));
      throw new Error('kafka is down');
    };
    const { stream: s, toPg, connection } = fakeConnection();
    const q = new CopyOutQuery('COPY t TO STDOUT', onBatch, 1);
    q.submit(connection);
    s.write(Buffer.concat([COPY_OUT_RESPONSE, copyData(rows[0])]));
    await new Promise((r) => setImmediate(r));
    s.write(Buffer.concat([copyData(rows[1]), copyData(rows[2]), COPY_DONE, AFTER]));
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([1]);
    expect(toPg).toEqual([]);
    release();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    // The rest of the COPY was read and dropped: no further batch, pg has its bytes back.
    expect(calls).toEqual([1]);
    expect(Buffer.concat(toPg).equals(AFTER)).toBe(true);
    q.handleReadyForQuery();
    await expect(q.done).rejects.toThrow('kafka is down');
  });
});
