import { copyLine } from '@pgferry/pg';
import type { ColumnInfo } from '@pgferry/pg';
import { AvroCopyDecoder, CopyTextSink } from './avro-copy-decoder';
import { AvroSlab } from './avro-slab';
import { DataError, SlabPool } from '@pgferry/core';
import { RecordDecoder } from './record-decoder';
import { TableEncoder } from './table-codec';
import { buildSchemas } from './table-schemas';
import { ALL_TYPES as COLUMNS, column as col } from './test/columns';

/** COPY text fields, tab-joined per row; \N is NULL, backslashes are COPY escapes. */
const ROWS: string[][] = [
  [
    '1',
    'a',
    '-32768',
    '9223372036854775807',
    '4294967295',
    't',
    '3.4028235e+38',
    '2.2250738585072014e-308',
    '12345678.1234',
    '3.14159265358979323846264338327950288',
    '2024-02-29',
    '2024-02-29 23:59:59.999999',
    '2024-02-29 23:59:59.999999+00',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '\\\\x00ff10',
    'tab\\there\\nnewline \\\\ backslash é 😀',
    '{1,2,NULL}',
    '{"a": "b\\\\"c"}',
    '-infinity',
    '-99999',
    '-9223372036854775808',
  ],
  [
    '-2147483648',
    '',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '\\N',
    '0001-01-01 BC',
    '0',
    '0',
  ],
  [
    '2147483647',
    '\\\\N',
    '0',
    '-1',
    '0',
    'f',
    'NaN',
    '-0',
    'NaN',
    'NaN',
    'infinity',
    'infinity',
    '-infinity',
    '00000000-0000-0000-0000-000000000000',
    '\\\\x',
    '',
    '{}',
    'null',
    '5874897-12-31',
    '12345',
    '1073741824',
  ],
  [
    '42',
    'k',
    '7',
    '-1073741825',
    '123',
    't',
    'Infinity',
    '-Infinity',
    '-0.0001',
    '-0',
    '4713-01-01 BC',
    '294277-01-01 00:00:00',
    '4713-01-01 00:00:00+00 BC',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '\\\\x\\\\',
    '\\\\',
    '{"\\\\\\\\"}',
    '[1e400]',
    '1999-12-31',
    '-1',
    '9007199254740993',
  ],
  [
    '43',
    'k',
    '1',
    '999999999999999',
    '1',
    't',
    '1e-45',
    '5e-324',
    '0',
    '1e+30',
    '1970-01-01',
    '1970-01-01 00:00:00',
    '1970-01-01 00:00:00+00',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '\\\\xDEADbeef',
    'x\\ry\\bz\\fw\\vv\\101\\x41',
    '{}',
    '{}',
    '2000-01-01',
    '1',
    '-1000000000000000',
  ],
];

function encoder(columns: ColumnInfo[], keyed = true) {
  const cols = keyed ? columns : columns.map((c) => ({ ...c, keyPosition: 0 }));
  const schemas = buildSchemas('pgferry', 'public', 'T', cols);
  return new TableEncoder(
    cols,
    schemas,
    { key: schemas.key ? 7 : null, value: 8 },
    {
      name: 'pgferry',
      db: 'db',
      schema: 'public',
      table: 'T',
    },
  );
}

describe('TableEncoder.encodeReads', () => {
  const lines = ROWS.map((r) => Buffer.from(r.join('\t'), 'utf8'));

  it.each([true, false])('writes the bytes encodeRead writes (keyed %s)', (keyed) => {
    const enc = encoder(COLUMNS, keyed);
    const fast = enc.encodeReads(lines, 1700000000123, false);
    lines.forEach((line, i) => {
      const ref = enc.encodeRead(line, 1700000000123, false);
      expect(fast[i].value.toString('hex')).toBe(ref.value.toString('hex'));
      expect(fast[i].key?.toString('hex')).toBe(ref.key?.toString('hex'));
    });
    const last = enc.encodeReads(lines.slice(0, 1), 5, true)[0];
    expect(last.value.toString('hex')).toBe(enc.encodeRead(lines[0], 5, true).value.toString('hex'));
  });

  it('writes and reads numeric(p, s) values as the reference does, at every byte length and sign', async () => {
    const cols = [
      col('id', 'int4', { notNull: true, keyPosition: 1 }),
      col('d', 'numeric', { precision: 18, scale: 4 }),
      col('z', 'numeric', { precision: 15, scale: 0, notNull: true }),
    ];
    const enc = encoder(cols);
    const texts: Array<[string, string]> = [];
    for (const m of [
      0,
      1,
      127,
      128,
      255,
      256,
      32767,
      32768,
      8388607,
      8388608,
      2 ** 31,
      2 ** 40,
      2 ** 47,
      2 ** 48,
    ])
      for (const n of [m, m - 1, m + 1].filter((x) => x >= 0))
        for (const sign of ['', '-'])
          texts.push([`${sign}${n}.${String(n % 10000).padStart(4, '0')}`, `${sign}${n}`]);
    texts.push(
      ['99999999999.9999', '999999999999999'],
      ['-99999999999.9999', '-999999999999999'],
      ['99999999999999.9999', '0'],
      ['-0.0000', '-0'],
      ['0.5', '00012'],
      ['1.23456', '7'],
      ['12', '8'],
      ['NaN', '9'],
      ['Infinity', '10'],
      ['-Infinity', '11'],
      ['\\N', '13'],
    );
    const rows = texts.map(([d, z], i) => Buffer.from(`${i}\t${d === '\\N' ? '\\N' : d}\t${z}`));
    const fast = enc.encodeReads(rows, 1, false);
    rows.forEach((line, i) =>
      expect([texts[i][0], fast[i].value.toString('hex')]).toEqual([
        texts[i][0],
        enc.encodeRead(line, 1, false).value.toString('hex'),
      ]),
    );
    // And back: the COPY decoder prints what RecordDecoder and copyLine print.
    const registry = { schema: async () => enc.schemas.value };
    const decoder = new AvroCopyDecoder(registry);
    const ref = new RecordDecoder(registry as never);
    await decoder.load(8);
    const sink = new CopyTextSink(64);
    let expected = '';
    for (const row of fast) {
      decoder.decodeInto(row.value, sink);
      expected += copyLine((await ref.decode(row.value)).after!);
    }
    expect(Buffer.concat(sink.take()).toString('utf8')).toBe(expected);
  });

  it('keeps every view valid across slabs', () => {
    const enc = encoder(COLUMNS);
    const many = Array.from({ length: 2000 }, (_, i) => lines[i % lines.length]);
    const fast = enc.encodeReads(many, 1, false, new AvroSlab(256));
    many.forEach((line, i) => expect(fast[i].value.equals(enc.encodeRead(line, 1, false).value)).toBe(true));
  });

  it.each([true, false])(
    'encodeReadsInto hands out ranges of the slabs with the bytes of encodeRead, across slabs and for a non-UTF-8 line (keyed %s)',
    (keyed) => {
      const enc = encoder(COLUMNS, keyed);
      const bad = Buffer.from(lines[0]);
      bad[bad.indexOf('tab') + 1] = 0xff;
      const many = [...Array.from({ length: 300 }, (_, i) => lines[i % lines.length]), bad];
      const got: Array<{ key: string; value: string }> = [];
      const ranges: Array<[Buffer, number, number, number]> = [];
      enc.encodeReadsInto(many, 1, false, new AvroSlab(256), (buf, vs, ve, ke) =>
        ranges.push([buf, vs, ve, ke]),
      );
      // Read back only after every row was written: earlier ranges must not have been overwritten.
      for (const [buf, vs, ve, ke] of ranges)
        got.push({ key: buf.subarray(ve, ke).toString('hex'), value: buf.subarray(vs, ve).toString('hex') });
      expect(got).toEqual(
        many.map((line) => {
          const ref = enc.encodeRead(line, 1, false);
          return { key: ref.key?.toString('hex') ?? '', value: ref.value.toString('hex') };
        }),
      );
    },
  );

  it('checks UTF-8 per run of lines cut from one buffer, and a line alone when its run is not valid', () => {
    const enc = encoder(COLUMNS);
    const bad = Buffer.from(lines[0]);
    bad[bad.indexOf('tab') + 1] = 0xc3; // a lead byte without its continuation
    const cut = (sep: number, parts: Buffer[]) => {
      const all = Buffer.concat(parts.flatMap((p) => [p, Buffer.from([sep])]));
      const out: Buffer[] = [];
      for (let at = 0, i = 0; i < parts.length; at += parts[i].length + 1, i++)
        out.push(all.subarray(at, at + parts[i].length));
      return out;
    };
    // Newline-separated (as COPY cuts them), and separated by a continuation byte that would make
    // the bad line's lead byte valid if the span were checked across it.
    for (const sep of [10, 0xa9]) {
      const many = cut(sep, [lines[0], lines[1], bad, lines[2], lines[3]]);
      const got: string[] = [];
      enc.encodeReadsInto(many, 1, false, new AvroSlab(), (buf, vs, ve) =>
        got.push(buf.toString('hex', vs, ve)),
      );
      expect(got).toEqual(many.map((l) => enc.encodeRead(l, 1, false).value.toString('hex')));
    }
  });

  it.each([true, false])(
    'encodeRowsInto writes the bytes of encodeRead for rows that are ranges of shared buffers (keyed %s)',
    (keyed) => {
      // Rows as a network read holds them: one buffer, separated by bytes (here tabs and
      // backslashes) that no field search may take for part of a row.
      const cut = (tables: ColumnInfo[], texts: string[]) => {
        const enc = encoder(tables, keyed);
        const gap = Buffer.from('\t\\\t\\\t');
        const buf = Buffer.concat(texts.flatMap((t) => [gap, Buffer.from(t)]).concat(gap));
        const starts: number[] = [];
        const ends: number[] = [];
        for (let at = 0, i = 0; i < texts.length; i++) {
          at += gap.length;
          starts.push(at);
          at += Buffer.byteLength(texts[i]);
          ends.push(at);
        }
        const rows = { length: texts.length, bufs: texts.map(() => buf), starts, ends };
        for (const utf8 of [true, false]) {
          const got: string[] = [];
          enc.encodeRowsInto({ ...rows, utf8 }, 1, false, new AvroSlab(), (b, vs, ve, ke) =>
            got.push(`${b.toString('hex', vs, ve)}/${b.toString('hex', ve, ke)}`),
          );
          expect(got).toEqual(
            texts.map((t) => {
              const ref = enc.encodeRead(Buffer.from(t), 1, false);
              return `${ref.value.toString('hex')}/${ref.key?.toString('hex') ?? ''}`;
            }),
          );
        }
      };
      cut(
        COLUMNS,
        ROWS.map((r) => r.join('\t')),
      );
      // One column: no tab in a row at all; long and short text without backslashes.
      cut([col('id', 'text', { notNull: true, keyPosition: 1 })], ['a', 'x'.repeat(100), '', 'b\\\\c']);
    },
  );

  it('writes a released slab pool buffer again, and nothing else', () => {
    const enc = encoder(COLUMNS);
    const pool = new SlabPool(8192, 2);
    const many = Array.from({ length: 200 }, (_, i) => lines[i % lines.length]);
    const first = new AvroSlab(pool.slabBytes, pool);
    const a = enc.encodeReads(many, 1, false, first);
    const held = new Set(a.map((r) => r.value.buffer));
    expect(held.size).toBeGreaterThan(1);
    // Until released, a second slab writes into buffers of its own.
    const b = enc.encodeReads(many, 1, false, new AvroSlab(pool.slabBytes, pool));
    expect(b.some((r) => held.has(r.value.buffer))).toBe(false);
    many.forEach((line, i) => expect(a[i].value.equals(enc.encodeRead(line, 1, false).value)).toBe(true));
    first.release();
    const c = enc.encodeReads(many, 1, false, new AvroSlab(pool.slabBytes, pool));
    expect(c.some((r) => held.has(r.value.buffer))).toBe(true);
    many.forEach((line, i) => expect(c[i].value.equals(enc.encodeRead(line, 1, false).value)).toBe(true));
  });

  it('takes the reference path for a line that is not UTF-8', () => {
    const enc = encoder(COLUMNS);
    const bad = Buffer.from(lines[0]);
    bad[bad.indexOf('tab') + 1] = 0xff;
    expect(enc.encodeReads([bad], 1, false)[0].value.equals(enc.encodeRead(bad, 1, false).value)).toBe(true);
  });

  it('refuses a NULL in a key or NOT NULL column, a row of the wrong width and a date not in ISO form, naming the table', () => {
    const enc = encoder(COLUMNS);
    const row = (at: number, v: string) => Buffer.from(ROWS[0].map((f, i) => (i === at ? v : f)).join('\t'));
    const misfit = (n: string) =>
      `the COPY row has ${n} fields, the table has 21 columns: the COPY data is not that of the columns pgferry asked for (damaged on the way, or read with another column list)`;
    const cases: Array<[Buffer, string, string?]> = [
      [
        row(0, '\\N'),
        `key column "id" is NULL (did the table's key change on the source since pgferry read it?): run the full-data phase again`,
      ],
      [
        row(18, '\\N'),
        'column "c_date_nn" is NULL but was NOT NULL when pgferry read the table (was its NOT NULL dropped on the source since?): run the full-data phase again',
      ],
      [Buffer.from(ROWS[0].slice(1).join('\t')), misfit('20')],
      // The fast path stops cutting at the column count; the reference path counts every field.
      [Buffer.from([...ROWS[0], 'x'].join('\t')), misfit('22 or more'), misfit('22')],
      [
        row(10, '02/29/2024'),
        'not an ISO date: "02/29/2024" (pgferry reads the form PostgreSQL prints with DateStyle ISO, which its sessions set)',
      ],
    ];
    for (const [line, fast, reference = fast] of cases) {
      // The fast path (UTF-8 rows) and the reference path (encodeRead) refuse alike.
      const encodeFast = () => enc.encodeReads([line], 1, false);
      const encodeReference = () => enc.encodeRead(line, 1, false);
      expect(encodeFast).toThrow(DataError);
      expect(encodeFast).toThrow(`snapshot row of "public"."T": ${fast}`);
      expect(encodeReference).toThrow(DataError);
      expect(encodeReference).toThrow(`snapshot row of "public"."T": ${reference}`);
    }
  });
});

describe('AvroCopyDecoder', () => {
  const lines = ROWS.map((r) => Buffer.from(r.join('\t'), 'utf8'));

  it('prints the COPY text RecordDecoder and copyLine print', async () => {
    const enc = encoder(COLUMNS);
    const registry = { schema: async () => enc.schemas.value };
    const fast = new AvroCopyDecoder(registry);
    const ref = new RecordDecoder(registry as never);
    await fast.load(8);
    const sink = new CopyTextSink(64);
    let expected = '';
    for (const line of lines) {
      const value = enc.encodeRead(line, 99, false).value;
      expect(fast.decodeInto(value, sink)).toEqual({ op: 'r', plan: fast.ready(8) });
      expect(fast.ready(8)!.columns).toEqual(COLUMNS.map((c) => c.name));
      expected += copyLine((await ref.decode(value)).after!);
    }
    expect(sink.rows).toBe(lines.length);
    expect(Buffer.concat(sink.take()).toString('utf8')).toBe(expected);
  });

  it('decodes a value inside a larger buffer (decodeRange) as decodeInto decodes it alone', async () => {
    const enc = encoder(COLUMNS);
    const decoder = new AvroCopyDecoder({ schema: async () => enc.schemas.value });
    await decoder.load(8);
    const values = lines.map((l) => enc.encodeRead(l, 3, false).value);
    const all = Buffer.concat(values.flatMap((v) => [Buffer.from([0xff, 0xee]), v]));
    const alone = new CopyTextSink();
    const ranged = new CopyTextSink();
    for (let i = 0, at = 2; i < values.length; at += values[i].length + 2, i++) {
      expect(decoder.decodeInto(values[i], alone)?.op).toBe('r');
      expect(decoder.decodeRange(all, at, at + values[i].length, ranged)?.op).toBe('r');
    }
    expect(Buffer.concat(ranged.take()).equals(Buffer.concat(alone.take()))).toBe(true);
  });

  it('refuses a value cut short or with a bad union branch, naming its schema, in both decoders', async () => {
    const enc = encoder(COLUMNS);
    const registry = { schema: async () => enc.schemas.value };
    const fast = new AvroCopyDecoder(registry);
    const reference = new RecordDecoder(registry as never);
    await fast.load(8);
    const value = enc.encodeRead(lines[0], 1, false).value;
    const cut = value.subarray(0, value.length - 40); // in the tail after "after"
    const early = value.subarray(0, 12); // in the fields of "after"
    const branch = Buffer.from(value);
    branch[6] = 8; // "after": union branch 4 of a [null, record]
    const bad = (detail: string) =>
      `Avro value of schema 8 does not decode (${detail}): the record is corrupt, or was not written with that schema`;
    const sink = new CopyTextSink();
    expect(() => fast.decodeInto(cut, sink)).toThrow(DataError);
    expect(() => fast.decodeInto(cut, sink)).toThrow(bad('truncated buffer'));
    expect(() => fast.decodeInto(early, sink)).toThrow(
      /^Avro value of schema 8 does not decode \((truncated Avro value|Avro length \d+ at byte \d+ runs past the value)\)/,
    );
    expect(sink.rows).toBe(0);
    await expect(reference.decode(cut)).rejects.toThrow(DataError);
    await expect(reference.decode(cut)).rejects.toThrow(
      /^Avro value of schema 8 does not decode \((the value is truncated|Avro length \d+ at byte \d+ runs past the value)\)/,
    );
    await expect(reference.decode(branch)).rejects.toThrow(
      bad('Avro union branch byte 8 is not in the schema (0 or 2)'),
    );
  });

  it('leaves a record with a before image to RecordDecoder', async () => {
    const enc = encoder(COLUMNS);
    const fast = new AvroCopyDecoder({ schema: async () => enc.schemas.value });
    await fast.load(8);
    const value = Buffer.from(enc.encodeRead(lines[0], 1, false).value);
    value[5] = 2;
    const sink = new CopyTextSink();
    expect(fast.decodeInto(value, sink)).toBeNull();
    expect(sink.rows).toBe(0);
  });
});

describe('CopyTextSink.int', () => {
  it('prints integers as String() does, bigints included', () => {
    const values: Array<number | bigint> = [
      0,
      -0,
      7,
      -7,
      9,
      10,
      -10,
      99,
      100,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 53 - 1,
      -(2 ** 53 - 1),
    ];
    values.push(2n ** 63n - 1n, -(2n ** 63n));
    const sink = new CopyTextSink(8);
    for (const v of values) {
      sink.int(v);
      sink.endLine();
    }
    expect(Buffer.concat(sink.take()).toString()).toBe(values.map((v) => `${String(v)}\n`).join(''));
  });
});

describe('AvroSlab: strings and bytea straight from COPY text', () => {
  const columns = [
    col('id', 'int4', { notNull: true, keyPosition: 1 }),
    col('t', 'text'),
    col('b', 'bytea'),
    col('k', 'varchar', { notNull: true }),
  ];
  const enc = encoder(columns);

  // COPY text of text fields: plain ones of every length around the one-pass and native limits,
  // and the same with an escape (which must be undone) at the start, in the middle and at the end.
  const texts: string[] = ['', 'é', '😀 ü'];
  for (const n of [1, 39, 40, 41, 47, 48, 255, 256, 257, 300, 5000]) {
    const plain = 'x'.repeat(n);
    texts.push(plain, `\\t${plain}`, `${plain.slice(0, n >> 1)}\\\\${plain.slice(n >> 1)}`, `${plain}\\n`);
  }
  const byteas = [
    '\\\\x',
    '\\\\x00',
    '\\\\x00ff10',
    '\\\\xABCDef',
    '\\\\xabc',
    `\\\\x${'0f'.repeat(400)}`,
    '\\N',
  ];

  it('writes the bytes the reference writer writes', () => {
    const lines: Buffer[] = [];
    texts.forEach((t, i) =>
      lines.push(Buffer.from(`${i}\t${t}\t${byteas[i % byteas.length]}\t${texts[texts.length - 1 - i]}`)),
    );
    const fast = enc.encodeReads(lines, 1, false);
    lines.forEach((line, i) => {
      const ref = enc.encodeRead(line, 1, false);
      expect([i, fast[i].value.toString('hex')]).toEqual([i, ref.value.toString('hex')]);
      expect(fast[i].key?.toString('hex')).toBe(ref.key?.toString('hex'));
    });
  });
});

describe('AvroSlab: floats straight from COPY text', () => {
  const columns = [
    col('id', 'int4', { notNull: true, keyPosition: 1 }),
    col('d', 'float8'),
    col('f', 'float4'),
  ];
  const enc = encoder(columns);

  it('reads every decimal text as Number() does, including the digits past 2^53 and exponents', () => {
    const texts = [
      '0',
      '-0',
      '-0.0',
      '00012',
      '0.1',
      '-0.5',
      '1.7976931348623157e+308',
      'NaN',
      'Infinity',
      '-Infinity',
      '5e-324',
      '9007199254740991',
      '9007199254740992',
      '9007199254740993',
      '0.30000000000000004',
      '123456789012345678',
      '0.0000000000000000000001',
      '0.00000000000000000000001',
      '1.',
      '.5',
      '-',
    ];
    // Pseudo-random doubles of every magnitude, printed as PostgreSQL does (shortest exact) and
    // rounded to fewer digits.
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 3000; i++) {
      const v = (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20);
      texts.push(String(v), v.toFixed(Math.floor(next() * 20)), v.toPrecision(1 + Math.floor(next() * 20)));
    }
    const lines = texts.map((t, i) => Buffer.from(`${i}\t${t}\t${t}`));
    const fast = enc.encodeReads(lines, 1, false);
    lines.forEach((line, i) => {
      const ref = enc.encodeRead(line, 1, false);
      expect([texts[i], fast[i].value.toString('hex')]).toEqual([texts[i], ref.value.toString('hex')]);
    });
  });
});
