import { parseTaskSpec } from './spec';

const base = {
  name: 'shop',
  source: { url: 'postgres://u@s/db' },
  destination: { url: 'postgres://u@d/db' },
};

describe('the transforms section', () => {
  it("takes the issue's example as written, and defaults to none", () => {
    const spec = parseTaskSpec({
      ...base,
      transforms: [
        {
          table: 'sales.customers',
          drop: ['internal_note'],
          rename: { name: 'full_name' },
          mask: { email: 'sha256', phone: 'redact' },
          add: { country_code: 'upper(country)' },
          filter: "country <> 'XX'",
        },
        { table: 'sales.orders', module: './my-transform.js' },
      ],
    });
    expect(spec.transforms.map((t) => t.table)).toEqual(['sales.customers', 'sales.orders']);
    expect(parseTaskSpec(base).transforms).toEqual([]);
  });

  it('names each bad entry and the fix', () => {
    expect(() =>
      parseTaskSpec({
        ...base,
        transforms: [
          { table: 'customers', drop: ['a'] },
          { table: 's.t', drop: ['a'], mask: { a: 'sha256' } },
          { table: 's.t', mask: { b: 'rot13' } },
          { table: 's.u' },
        ],
      }),
    ).toThrow(
      [
        'task spec has 4 problems:',
        '  - transforms[0].table: must be schema.table (the source table)',
        '  - transforms[1].mask: column "a" is both in drop and in mask: give each column one treatment',
        '  - transforms[2].mask.b: must be one of "sha256", "md5", "redact", "null", got "rot13"',
        '  - transforms[3]: the transform of s.u says nothing: give drop, rename, mask, add, filter or module',
      ].join('\n'),
    );
    expect(() =>
      parseTaskSpec({
        ...base,
        transforms: [
          { table: 's.t', drop: ['a'] },
          { table: 's.t', filter: 'true' },
        ],
      }),
    ).toThrow('transforms[1].table: s.t has more than one transform: merge them into one entry');
  });
});
