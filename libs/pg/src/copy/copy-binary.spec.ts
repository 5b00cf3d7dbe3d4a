import { converterFor } from '@pgferry/avro';
import { microsToTimestamp } from './civil-time';
import { SlabPool } from '@pgferry/core';
import { CopyBinarySink } from './copy-binary';

const ascii = (s: string) => Buffer.from(s, 'utf8');

/** The fields one call writes, as hex (the tuple's field count stripped). */
function field(write: (sink: CopyBinarySink) => boolean | void): string | null {
  const sink = new CopyBinarySink(16);
  sink.beginRow(1);
  if (write(sink) === false) {
    sink.rollback();
    expect(sink.take()).toEqual([]);
    return null;
  }
  sink.endRow();
  const all = Buffer.concat(sink.take());
  // 19 bytes of header, 2 of field count, 2 of trailer.
  return all.subarray(21, all.length - 2).toString('hex');
}

const text = (f: 'numericText' | 'uuid' | 'timestamptz' | 'dateText', s: string) =>
  field((out) => out[f](ascii(s), 0, Buffer.byteLength(s)));

describe('CopyBinarySink', () => {
  it('frames tuples with the signature, header and trailer, and keeps tuples whole across chunks', () => {
    const sink = new CopyBinarySink(8);
    for (let i = 0; i < 3; i++) {
      sink.beginRow(2);
      sink.int4(i);
      sink.nul();
      sink.endRow();
    }
    sink.beginRow(2);
    sink.int4(9);
    sink.rollback();
    const chunks = sink.take();
    expect(chunks.length).toBeGreaterThan(3);
    const all = Buffer.concat(chunks);
    expect(all.subarray(0, 19).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0');
    const tuple = (i: number) => `0002` + `00000004${i.toString(16).padStart(8, '0')}` + 'ffffffff';
    expect(all.subarray(19).toString('hex')).toBe(tuple(0) + tuple(1) + tuple(2) + 'ffff');
    expect(sink.take()).toEqual([]);
  });

  it('writes bytes and jsonb of every length around the loop and native copy limit, from inside a larger buffer', () => {
    for (const n of [0, 1, 39, 40, 41, 84, 300]) {
      const value = Buffer.from('é'.repeat(n).slice(0, n), 'utf8').subarray(0, n);
      const src = Buffer.concat([Buffer.from('head'), value, Buffer.from('tail')]);
      const len = (k: number) => k.toString(16).padStart(8, '0');
      expect(field((out) => out.bytes(src, 4, 4 + n))).toBe(len(n) + value.toString('hex'));
      expect(field((out) => out.jsonb(src, 4, 4 + n))).toBe(len(n + 1) + '01' + value.toString('hex'));
    }
  });

  it('writes numeric in base 10000 around the decimal point, with the display scale', () => {
    // ndigits, weight, sign, dscale, digits
    expect(text('numericText', '-12345678901234.56')).toBe(
      '00000012' + '0005' + '0003' + '4000' + '0002' + '000c0d801ed204d215e0',
    );
    expect(text('numericText', '0.00')).toBe('00000008' + '0000' + '0000' + '0000' + '0002');
    expect(text('numericText', '0.0001')).toBe('0000000a' + '0001' + 'ffff' + '0000' + '0004' + '0001');
    expect(text('numericText', '10000')).toBe('0000000a' + '0001' + '0001' + '0000' + '0000' + '0001');
    expect(text('numericText', 'NaN')).toBe('00000008' + '0000' + '0000' + 'c000' + '0000');
    expect(text('numericText', '-Infinity')).toBe('00000008' + '0000' + '0000' + 'f000' + '0000');
    for (const bad of ['1e5', ' 1', '', '-', '1.2.3', '-NaN', 'infinity'])
      expect(text('numericText', bad)).toBeNull();
    // -1234.5 at scale 1: decimal bytes of -12345.
    const dec = Buffer.from([0xcf, 0xc7]);
    expect(field((out) => out.numericDecimal(dec, 0, 2, 1))).toBe(text('numericText', '-1234.5'));
    expect(field((out) => out.numericDecimal(dec, 0, 0, 3))).toBe(text('numericText', '0.000'));
  });

  it('writes timestamptz as microseconds since 2000 exactly over years 1 to 9999, and refuses the rest', () => {
    const pgMicros = (iso: string) =>
      BigInt(Date.parse(iso.replace(' ', 'T').replace('+00', 'Z'))) * 1000n - 946684800000000n;
    const hex8 = (n: bigint) => BigInt.asUintN(64, n).toString(16).padStart(16, '0');
    for (const iso of [
      '2000-01-01 00:00:00+00',
      '1999-12-31 23:59:59+00',
      '0001-01-01 00:00:00+00',
      '9999-12-31 23:59:59+00',
      '1500-06-01 12:00:00+00',
      '2262-04-11 23:47:16+00',
    ])
      expect(text('timestamptz', iso)).toBe(`00000008${hex8(pgMicros(iso))}`);
    expect(text('timestamptz', '9999-12-31 23:59:59.999999+00')).toBe(
      `00000008${hex8(pgMicros('9999-12-31 23:59:59+00') + 999999n)}`,
    );
    expect(text('timestamptz', '0001-01-01 00:00:00.5+00')).toBe(
      `00000008${hex8(pgMicros('0001-01-01 00:00:00+00') + 500000n)}`,
    );
    expect(text('timestamptz', 'infinity')).toBe('000000087fffffffffffffff');
    expect(text('timestamptz', '-infinity')).toBe('000000088000000000000000');
    for (const bad of [
      '0044-03-15 12:00:00+00 BC',
      '10000-01-01 00:00:00+00',
      '2024-01-01 00:00:00+05:30',
      '2024-01-01 00:00:00.+00',
      '2024-01-01 00:00:00.1234567+00',
      '2024-13-01 00:00:00+00',
      'Infinity',
    ])
      expect(text('timestamptz', bad)).toBeNull();
  });

  it('writes one-dimensional text arrays from their text form, and refuses other shapes', () => {
    const elem = (s: string | null) =>
      s === null ? 'ffffffff' : Buffer.byteLength(s).toString(16).padStart(8, '0') + ascii(s).toString('hex');
    const arr = (items: Array<string | null>, hasNull: number) => {
      const body =
        `00000001${hasNull.toString(16).padStart(8, '0')}00000019` +
        `${items.length.toString(16).padStart(8, '0')}00000001${items.map(elem).join('')}`;
      return (body.length / 2).toString(16).padStart(8, '0') + body;
    };
    const write = (s: string) => field((out) => out.textArray(ascii(s), 0, Buffer.byteLength(s), 25));
    expect(write('{}')).toBe('0000000c' + '00000000' + '00000000' + '00000019');
    expect(write('{a,NULL,"NULL","a,b","c\\\\d\\"","",null,é}')).toBe(
      arr(['a', null, 'NULL', 'a,b', 'c\\d"', '', null, 'é'], 1),
    );
    expect(write('{x}')).toBe(arr(['x'], 0));
    for (const bad of ['[0:1]={a,b}', '{{a},{b}}', '{a,}', '{,a}', '{"a}', '{a b}', '{"a"x}', '{a', 'a}'])
      expect(write(bad)).toBeNull();
  });

  it('writes uuid and date texts, and refuses malformed ones', () => {
    expect(text('uuid', 'A0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).toBe(
      '00000010a0eebc999c0b4ef8bb6d6bb9bd380a11',
    );
    for (const bad of ['a0eebc999c0b4ef8bb6d6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g'])
      expect(text('uuid', bad)).toBeNull();
    expect(text('dateText', 'infinity')).toBe('000000047fffffff');
    expect(text('dateText', '-infinity')).toBe('0000000480000000');
    expect(text('dateText', '2024-01-01')).toBeNull();
    expect(field((out) => out.date(0))).toBe('00000004ffffd533');
  });
  it('leaves the long extremes, which mean infinity, to the text path, and the capture sends a timestamp there as text', () => {
    const max = 9223372036854775807n;
    expect(field((out) => out.timestamp(max))).toBeNull();
    expect(field((out) => out.timestamp(-max - 1n))).toBeNull();
    expect(field((out) => out.timestamp(max - 1n))).toBe('00000008' + '7ffca2fec4c81ffe');
    // The last microsecond a long holds: as a long it would read back as infinity.
    const conv = converterFor([{ type: 'long', logicalType: 'local-timestamp-micros' }, { type: 'string' }]);
    expect(microsToTimestamp(max)).toBe('infinity');
    expect(conv.toAvro('294247-01-10 04:00:54.775807')).toBe('294247-01-10 04:00:54.775807');
    expect(conv.toAvro('294247-01-10 04:00:54.775806')).toBe(max - 1n);
    expect(conv.fromAvro(conv.toAvro('294247-01-10 04:00:54.775806'))).toBe('294247-01-10 04:00:54.775806');
  });
  it('takes its chunk buffers from a pool and gives them back only on release', () => {
    // Larger than Node's small-buffer pool, so each chunk buffer has its own memory.
    const pool = new SlabPool(16384, 4);
    const write = (sink: CopyBinarySink, n: number) => {
      for (let i = 0; i < n; i++) {
        sink.beginRow(1);
        sink.int4(i);
        sink.endRow();
      }
      // The rows' chunks, without the shared header and trailer.
      return sink.take().slice(1, -1);
    };
    const first = new CopyBinarySink(16384, pool);
    const sent = write(first, 20);
    const buffers = new Set(sent.map((c) => c.buffer));
    // Not released: a second sink gets other buffers.
    const second = new CopyBinarySink(16384, pool);
    expect(write(second, 20).some((c) => buffers.has(c.buffer))).toBe(false);
    first.release();
    const third = new CopyBinarySink(16384, pool);
    const again = write(third, 20);
    expect(again.some((c) => buffers.has(c.buffer))).toBe(true);
    const all = Buffer.concat(again);
    expect(all.length).toBe(20 * 10);
    expect(all.readInt32BE(19 * 10 + 6)).toBe(19);
    second.release();
    third.release();
  });
});
