import avro from 'avsc';
import { AvroSlab } from './avro-slab';
import { wire } from './confluent-wire';
import {
  decodeTransactionRecord,
  TRANSACTION_KEY_SCHEMA,
  TRANSACTION_VALUE_SCHEMA,
  writeTransactionRecord,
} from './transaction-records';

const keyType = avro.Type.forSchema(TRANSACTION_KEY_SCHEMA as unknown as avro.Schema);
const valueType = avro.Type.forSchema(TRANSACTION_VALUE_SCHEMA as unknown as avro.Schema);
const ids = { key: 7, value: 300 };

/** The record a BEGIN (no counts) or END stands for, as decodeTransactionRecord gives it. */
const record = (status: 'BEGIN' | 'END', id: string, tsMs: number, counts?: Map<string, number>) => ({
  status,
  id,
  event_count: counts ? [...counts.values()].reduce((a, b) => a + b, 0) : null,
  data_collections: counts
    ? [...counts].map(([data_collection, event_count]) => ({ data_collection, event_count }))
    : null,
  ts_ms: tsMs,
});

/** The record as avsc writes it: the reference for the hand-written writer. */
function reference(status: 'BEGIN' | 'END', id: string, tsMs: number, counts?: Map<string, number>) {
  return {
    key: wire(ids.key, keyType.toBuffer({ id })),
    value: wire(ids.value, valueType.toBuffer(record(status, id, tsMs, counts))),
  };
}

describe('writeTransactionRecord: BEGIN and END records written by hand', () => {
  it.each([
    { what: 'a BEGIN', status: 'BEGIN' as const, id: '571:53736280', tsMs: 1733580000123 },
    {
      what: 'an END with one table',
      status: 'END' as const,
      id: '571:53736280',
      tsMs: 1733580000123,
      counts: new Map([['public.accounts', 3]]),
    },
    {
      what: 'an END with names that need quoting, Unicode and counts past 2^31',
      status: 'END' as const,
      id: '4294967295:18446744073709551615',
      tsMs: 0,
      counts: new Map([
        ['My Schema."Straße"', 2 ** 40 + 5],
        ['public.t', 1],
        ['s.ü', 64],
      ]),
    },
    {
      what: 'an END of a transaction whose changes were all left out',
      status: 'END' as const,
      id: '1:2',
      tsMs: 5,
      counts: new Map<string, number>(),
    },
  ])('$what is the bytes avsc writes', ({ status, id, tsMs, counts }) => {
    const out = new AvroSlab(64);
    // Several records through one small slab: views stay valid when it is replaced.
    const first = writeTransactionRecord(out, ids, status, id, tsMs, counts);
    const second = writeTransactionRecord(out, ids, status, id, tsMs + 1, counts);
    const want = reference(status, id, tsMs, counts);
    expect(first.key.equals(want.key)).toBe(true);
    expect(first.value.equals(want.value)).toBe(true);
    expect(second.value.equals(reference(status, id, tsMs + 1, counts).value)).toBe(true);
    expect(decodeTransactionRecord(first.value)).toEqual(record(status, id, tsMs, counts));
  });
});
