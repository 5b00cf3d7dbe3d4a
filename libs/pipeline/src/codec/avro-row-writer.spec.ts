import type { ColumnInfo } from './pg-columns';
import { buildSchemas, TableEncoder } from './table-codec';

const col = (name: string, baseType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({
  name,
  type: baseType,
  baseType,
  precision: null,
  scale: null,
  notNull: false,
  keyPosition: 0,
  ...extra,
});

describe('AvroSlab: strings and bytea straight from COPY text', () => {
  const columns = [
    col('id', 'int4', { notNull: true, keyPosition: 1 }),
    col('t', 'text'),
    col('b', 'bytea'),
    col('k', 'varchar', { notNull: true }),
  ];
  const schemas = buildSchemas('pgferry', 'public', 'T', columns);
  const enc = new TableEncoder(
    columns,
    schemas,
    { key: 7, value: 8 },
    { name: 'pgferry', db: 'db', schema: 'public', table: 'T' },
  );

  // COPY text of text fields: plain ones of every length around the one-pass and native limits,
  // and the same with an escape (which must be undone) at the start, in the middle and at the end.
  const texts: string[] = ['', 'é', '😀 ü'];
  for (const n of [1, 47, 48, 255, 256, 257, 300, 5000]) {
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
  const schemas = buildSchemas('pgferry', 'public', 'T', columns);
  const enc = new TableEncoder(
    columns,
    schemas,
    { key: 7, value: 8 },
    { name: 'pgferry', db: 'db', schema: 'public', table: 'T' },
  );

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
