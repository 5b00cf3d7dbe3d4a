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
