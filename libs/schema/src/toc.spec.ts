import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTocList, parseTocListing, splitTocText } from './toc';

/** Real `pg_restore -l -v` output (pg_dump 15) of a dump with schemas "Sales Dept", app and "app x". */
const LISTING = readFileSync(join(__dirname, 'fixtures', 'toc-listing.txt'), 'utf8');
const HINTS = { schemas: ['app', 'app x', 'Sales Dept', 'public'], owners: ['postgres', 'Ann Lee'] };

describe('parseTocListing', () => {
  const entries = parseTocListing(LISTING, HINTS);
  const byId = (id: number) => entries.find((e) => e.dumpId === id)!;

  it('reads every entry, in order, skipping the header comments', () => {
    expect(entries).toHaveLength(45);
    expect(entries.slice(0, 4).map((e) => e.desc)).toEqual([
      'ENCODING',
      'STDSTRINGS',
      'SEARCHPATH',
      'DATABASE',
    ]);
    expect(entries[entries.length - 1].desc).toBe('FK CONSTRAINT');
  });

  it.each([
    [
      7,
      {
        catalogOid: 2615,
        objectOid: 16384,
        desc: 'SCHEMA',
        schema: null,
        tag: 'Sales Dept',
        owner: 'postgres',
      },
    ],
    [9, { desc: 'SCHEMA', schema: null, tag: 'app x', owner: 'Ann Lee' }],
    [2, { catalogOid: 3079, desc: 'EXTENSION', schema: null, tag: 'pg_trgm', owner: '' }],
    [
      3474,
      { catalogOid: 0, objectOid: 0, desc: 'COMMENT', schema: null, tag: 'EXTENSION pg_trgm', owner: '' },
    ],
    [222, { desc: 'TABLE', schema: 'Sales Dept', tag: 'Order "Lines"', owner: 'postgres' }],
    [221, { desc: 'SEQUENCE', schema: 'Sales Dept', tag: 'Order "Lines"_id_seq', owner: 'postgres' }],
    [
      232,
      { catalogOid: 1255, desc: 'FUNCTION', schema: 'app', tag: 'add(integer, integer)', owner: 'postgres' },
    ],
    [231, { desc: 'TABLE', schema: 'app x', tag: 'y z', owner: 'Ann Lee' }],
    [3479, { desc: 'COMMENT', schema: 'app x', tag: 'TABLE "y z"', owner: 'Ann Lee' }],
    [3477, { desc: 'ACL', schema: 'app', tag: 'TABLE customers', owner: 'postgres' }],
    [3478, { desc: 'SEQUENCE OWNED BY', schema: 'app', tag: 'customers_id_seq', owner: 'postgres' }],
    [226, { desc: 'MATERIALIZED VIEW', schema: 'app', tag: 'mv', owner: 'postgres' }],
    [3301, { desc: 'TABLE ATTACH', schema: 'app', tag: 'measurements_2024', owner: 'postgres' }],
    [3302, { catalogOid: 2604, desc: 'DEFAULT', schema: 'app', tag: 'customers id', owner: 'postgres' }],
    [3316, { desc: 'CONSTRAINT', schema: 'app x', tag: 'y z y z_pkey', owner: 'Ann Lee' }],
    [3309, { desc: 'INDEX', schema: 'Sales Dept', tag: 'idx "note"', owner: 'postgres' }],
    [3317, { desc: 'INDEX ATTACH', schema: 'app', tag: 'measurements_2024_at_idx', owner: 'postgres' }],
    [
      3319,
      { catalogOid: 2620, objectOid: 16435, desc: 'TRIGGER', schema: 'app', tag: 'customers trg_touch' },
    ],
    [
      3318,
      { desc: 'FK CONSTRAINT', schema: 'Sales Dept', tag: 'Order "Lines" Order "Lines"_customer_id_fkey' },
    ],
  ])('entry %i', (id, expected) => {
    expect(byId(id)).toMatchObject(expected);
  });

  it('attaches "depends on" lines to the entry above them', () => {
    expect(byId(7).dependencies).toEqual([]);
    expect(byId(220).dependencies).toEqual([891, 888, 8]);
    expect(byId(3314).dependencies).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 228]);
    expect(byId(3318).dependencies).toEqual([220, 222, 3306]);
  });

  it('keeps each line verbatim (trailing space of an empty owner included) for list files', () => {
    expect(byId(2).line).toBe('2; 3079 16450 EXTENSION - pg_trgm ');
    expect(formatTocList([byId(7), byId(222)])).toBe(
      '7; 2615 16384 SCHEMA - Sales Dept postgres\n222; 1259 16410 TABLE Sales Dept Order "Lines" postgres\n',
    );
  });

  it('reads CRLF line ends', () => {
    const [e] = parseTocListing('222; 1259 16410 TABLE app t postgres\r\n;\tdepends on: 8\r\n');
    expect(e).toMatchObject({ tag: 't', owner: 'postgres', dependencies: [8] });
  });
});

describe('splitTocText', () => {
  it('without hints takes the first word as schema and the last as owner', () => {
    expect(splitTocText('TABLE Sales Dept Order "Lines" postgres')).toEqual({
      desc: 'TABLE',
      schema: 'Sales',
      tag: 'Dept Order "Lines"',
      owner: 'postgres',
    });
  });

  it('with hints prefers the longest schema and owner that fit', () => {
    expect(splitTocText('TABLE app x y z Ann Lee', ['app x', 'app'], ['Ann Lee', 'Lee'])).toEqual({
      desc: 'TABLE',
      schema: 'app x',
      tag: 'y z',
      owner: 'Ann Lee',
    });
  });

  it('prefers multi-word descs', () => {
    expect(splitTocText('MATERIALIZED VIEW DATA app mv postgres').desc).toBe('MATERIALIZED VIEW DATA');
    expect(splitTocText('PUBLICATION TABLES IN SCHEMA - pub app postgres')).toMatchObject({
      desc: 'PUBLICATION TABLES IN SCHEMA',
      schema: null,
    });
  });

  it('falls back to the first word for a desc it does not know', () => {
    expect(splitTocText('WIDGET app w postgres')).toEqual({
      desc: 'WIDGET',
      schema: 'app',
      tag: 'w',
      owner: 'postgres',
    });
  });
});
