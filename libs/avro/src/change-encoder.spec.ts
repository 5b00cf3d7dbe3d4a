import avro from 'avsc';
import { DataError } from '@pgferry/core';
import type { ColumnInfo } from '@pgferry/pg';
import { avscOptions, avroTypeFor, converterFor } from './avro-mapping';
import { ChangeEncoder, placeholderFor, type ChangeMeta, type ChangeOp } from './change-encoder';
import { wire } from './confluent-wire';
import { buildSchemas, fieldNames, keyIndexes } from './table-schemas';
import { ALL_TYPES, ALL_TYPES_TEXT, column } from './test/columns';

/** pgoutput text values (no COPY escapes), in ALL_TYPES' order; null is SQL NULL. */
const ROWS: Array<Array<string | null>> = [
  ALL_TYPES_TEXT,
  ['-2147483648', '', ...Array<null>(16).fill(null), '0001-01-01 BC', '0', '0'],
  [
    '42',
    '\\N',
    '7',
    '-1073741825',
    '123',
    'f',
    'NaN',
    '-Infinity',
    'NaN',
    '-0',
    '4713-01-01 BC',
    '294277-01-01 00:00:00',
    '4713-01-01 00:00:00+00 BC',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '\\x',
    'x'.repeat(5000) + '€',
    '{}',
    '[1e400]',
    '5874897-12-31',
    '12345',
    '9007199254740993',
  ],
];

const SOURCE = { name: 'pre', db: 'shop', schema: 'Sales "EU"', table: 'Order Lines' };

/**
 * The reference: the envelope as a JavaScript record for avsc, the way the encoder was first
 * written (values through the mapping's converters, placeholders where a value is not sent).
 */
function reference(columns: ColumnInfo[], ids: { key: number | null; value: number }) {
  const schemas = buildSchemas(SOURCE.name, SOURCE.schema, SOURCE.table, columns);
  const keyType = schemas.key ? avro.Type.forSchema(schemas.key as avro.Schema, avscOptions()) : null;
  const valueType = avro.Type.forSchema(schemas.value as avro.Schema, avscOptions());
  const types = columns.map(avroTypeFor);
  const names = fieldNames(columns);
  const record = (texts: ReadonlyArray<string | null>, missing: ReadonlySet<string>) =>
    Object.fromEntries(
      texts.map((t, i) => {
        const nullable = !columns[i].notNull;
        if (missing.has(columns[i].name) || (t === null && !nullable))
          return [names[i], nullable ? null : placeholderFor(types[i])];
        return [names[i], t === null ? null : converterFor(types[i]).toAvro(t)];
      }),
    );
  return {
    schemas,
    encode(
      op: ChangeOp | 't',
      before: Array<string | null> | null,
      after: Array<string | null> | null,
      unchanged: string[],
      meta: ChangeMeta,
      now: number,
    ) {
      const b = before && record(before, new Set());
      const a = after && record(after, new Set(unchanged));
      const from = op === 'd' ? b : a;
      const key =
        keyType && from
          ? wire(
              ids.key!,
              keyType.toBuffer(
                Object.fromEntries(keyIndexes(columns).map((i) => [names[i], from[names[i]]])),
              ),
            )
          : null;
      const value = valueType.toBuffer({
        before: b,
        after: a,
        source: {
          version: 'pgferry-0.1',
          connector: 'postgresql',
          name: SOURCE.name,
          ts_ms: BigInt(meta.tsMs),
          snapshot: 'false',
          db: SOURCE.db,
          sequence: null,
          schema: SOURCE.schema,
          table: SOURCE.table,
          txId: meta.txId === null ? null : BigInt(meta.txId),
          lsn: meta.lsn,
          xmin: null,
        },
        op,
        ts_ms: BigInt(now),
        transaction: meta.transaction
          ? {
              id: meta.transaction.id,
              total_order: BigInt(meta.transaction.totalOrder),
              data_collection_order: BigInt(meta.transaction.dataCollectionOrder),
            }
          : null,
        pgferry_unchanged_toast: unchanged,
      });
      return { key, value: wire(ids.value, value) };
    },
  };
}

describe('ChangeEncoder writes the bytes avsc writes for the same envelope', () => {
  const ids = { key: 7, value: 300_000 };
  const ref = reference(ALL_TYPES, ids);
  const metas: ChangeMeta[] = [
    { lsn: 0x16b3748n, txId: 771, tsMs: 1_733_000_000_123 },
    {
      lsn: 0x7fff_ffff_0000_0001n,
      txId: null,
      tsMs: 0,
      transaction: { id: '771:23803720', totalOrder: 3, dataCollectionOrder: 2_000_000_000_000 },
    },
  ];
  const now = 1_765_000_000_000;
  beforeEach(() => jest.spyOn(Date, 'now').mockReturnValue(now));
  afterEach(() => jest.restoreAllMocks());

  it('for inserts, updates (with before image and unchanged TOAST columns), deletes and truncates of every type', () => {
    const enc = new ChangeEncoder(ALL_TYPES, ref.schemas, ids, SOURCE);
    const cases: Array<[ChangeOp, Array<string | null> | null, Array<string | null> | null, string[]]> = [];
    for (const row of ROWS) {
      cases.push(['c', null, row, []]);
      cases.push(['u', null, row, ['c_text', 'c_json', 'c_date_nn']]);
      cases.push(['u', ROWS[0], row, []]);
      cases.push(['d', row, null, []]);
      // A delete under the default replica identity: key columns only.
      cases.push(['d', row.map((v, i) => (ALL_TYPES[i].keyPosition ? v : null)), null, []]);
    }
    let n = 0;
    for (const meta of metas)
      for (const [op, before, after, unchanged] of cases) {
        const got = enc.encode(op, before, after, unchanged, meta);
        const want = ref.encode(op, before, after, unchanged, meta, now);
        expect({ n, op, key: got.key?.toString('hex') }).toEqual({ n, op, key: want.key?.toString('hex') });
        expect({ n, op, value: got.value.toString('hex') }).toEqual({
          n,
          op,
          value: want.value.toString('hex'),
        });
        n++;
      }
    for (const meta of metas)
      expect(enc.encodeTruncate(meta).value.toString('hex')).toBe(
        ref.encode('t', null, null, [], meta, now).value.toString('hex'),
      );
  });

  it("prepares a change ahead of its place in the stream: finished, the bytes are encode's", () => {
    const enc = new ChangeEncoder(ALL_TYPES, ref.schemas, ids, SOURCE);
    const row = ROWS[1];
    const cases: Array<[ChangeOp, Array<string | null> | null, Array<string | null> | null, string[]]> = [
      ['c', null, row, []],
      ['u', ROWS[0], row, ['c_text', 'c_json']],
      ['d', row, null, []],
    ];
    for (const [op, before, after, unchanged] of cases) {
      // Copied, as the capture's spool holds them until the transaction commits.
      const p = enc.prepare(op, before, after, unchanged);
      const held = Buffer.concat([Buffer.from('xyz'), p.head, p.trailer]);
      const key = p.key && Buffer.from(p.key);
      const [head, trailer] = [3, 3 + p.head.length];
      for (const meta of metas) {
        const want = ref.encode(op, before, after, unchanged, meta, now);
        expect(key?.toString('hex')).toBe(want.key?.toString('hex'));
        expect(enc.finish(held, head, trailer, op, trailer, held.length, meta).toString('hex')).toBe(
          want.value.toString('hex'),
        );
      }
    }
  });

  it('writes the tail of each change afresh when its commit time, transaction or millisecond changes', () => {
    const enc = new ChangeEncoder(ALL_TYPES, ref.schemas, ids, SOURCE);
    const row = ROWS[1];
    const tx = (id: string, tsMs: number): ChangeMeta => ({
      lsn: 0x100n,
      txId: 5,
      tsMs,
      transaction: { id, totalOrder: 1, dataCollectionOrder: 1 },
    });
    const steps: Array<[ChangeMeta, number]> = [
      [tx('5:256', 1_733_000_000_000), now],
      [tx('5:256', 1_733_000_000_000), now + 1],
      [tx('6:512', 1_733_000_000_000), now + 1],
      [tx('6:512', 1_733_000_000_001), now + 1],
      [tx('5:256', 1_733_000_000_000), now],
    ];
    for (const [meta, at] of steps) {
      jest.spyOn(Date, 'now').mockReturnValue(at);
      expect(enc.encode('c', null, row, [], meta).value.toString('hex')).toBe(
        ref.encode('c', null, row, [], meta, at).value.toString('hex'),
      );
    }
  });

  it('keeps earlier keys and values intact while later changes fill new slabs', () => {
    const enc = new ChangeEncoder(ALL_TYPES, ref.schemas, ids, SOURCE);
    const got = Array.from({ length: 3000 }, (_, i) => {
      const row = [...ROWS[2]];
      row[0] = String(i);
      return { row, r: enc.encode('c', null, row, [], metas[0]) };
    });
    for (const { row, r } of got) {
      const want = ref.encode('c', null, row, [], metas[0], now);
      expect(Buffer.compare(r.key!, want.key!)).toBe(0);
      expect(Buffer.compare(r.value, want.value)).toBe(0);
    }
  });

  it('writes no key for a keyless table, and names the table and op of a change it cannot encode', () => {
    const cols = [column('n', 'int4'), column('d', 'date', { notNull: true })];
    const keyless = reference(cols, { key: null, value: 9 });
    const enc = new ChangeEncoder(cols, keyless.schemas, { key: null, value: 9 }, SOURCE);
    const r = enc.encode('c', null, ['5', '2024-01-01'], [], metas[0]);
    expect(r.key).toBeNull();
    expect(r.value.equals(keyless.encode('c', null, ['5', '2024-01-01'], [], metas[0], now).value)).toBe(
      true,
    );
    const bad = () => enc.encode('c', null, ['5'], [], metas[0]);
    expect(bad).toThrow(DataError);
    expect(bad).toThrow(
      'c change of "Sales ""EU"""."Order Lines": the change has 1 values, the table has 2 columns',
    );
    // The failed changes left nothing behind: the next one is whole.
    const next = enc.encode('u', null, ['6', '2024-01-02'], [], metas[1]);
    expect(next.value.equals(keyless.encode('u', null, ['6', '2024-01-02'], [], metas[1], now).value)).toBe(
      true,
    );
  });
});
