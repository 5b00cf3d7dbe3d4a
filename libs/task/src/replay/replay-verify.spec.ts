import { formatReplayVerify } from './replay-verify';

describe('formatReplayVerify', () => {
  it('says per table what the topics and the database hold, then each differing range and row', () => {
    const text = formatReplayVerify(
      {
        ok: false,
        tables: [
          {
            table: 'public.items',
            target: 'public.items',
            sourceRows: 3,
            destinationRows: 2,
            chunks: 1,
            key: ['id'],
            mismatches: [{ from: null, to: null, sourceRows: 3, destinationRows: 2 }],
          },
          {
            table: 'public.t',
            target: 'public.t',
            sourceRows: 1,
            destinationRows: 1,
            chunks: 1,
            key: [],
            mismatches: [],
          },
          {
            table: 'public.gone',
            target: 'public.gone',
            sourceRows: 0,
            destinationRows: 0,
            chunks: 0,
            key: [],
            problem: 'missing on the destination',
            mismatches: [],
          },
        ],
      },
      new Map([
        [
          'public.items',
          [
            { key: '("id")=(2)', kind: 'value' as const, column: 'note', expected: '"a"', found: '"b"' },
            { key: '("id")=(3)', kind: 'missing' as const },
            { key: '("id")=(9)', kind: 'extra' as const },
          ],
        ],
      ]),
    );
    expect(text.split('\n')).toEqual([
      '  DIFFERENT public.items: 3 rows in the topics, 2 in the database',
      '            the whole table: 3 rows in the topics, 2 in the database',
      '            row ("id")=(2): column "note" is "a" in the topics, "b" in the database',
      '            row ("id")=(3): missing in the database',
      '            row ("id")=(9): in the database, not in the topics',
      '  equal     public.t: 1 rows in the topics, 1 in the database',
      '  MISSING   public.gone: missing on the destination',
    ]);
  });
});
