import { parseTaskSpec } from '@pgferry/core';
import type { TableInfo } from './catalog';
import { newTableRule, selectTables, takesNewTable } from './selection';

const t = (schema: string, table: string): TableInfo => ({
  schema,
  table,
  primaryKey: ['id'],
  replicaIdentity: 'd',
  uniqueNotNullKey: [],
  estimatedRows: 0,
  bytes: 0,
  partitioned: false,
});
const catalog = [
  t('public', 'a'),
  t('public', 'B c'),
  t('Sales', 'Orders'),
  t('Sales', 'lines'),
  t('audit', 'log'),
];
const objects = (o: unknown) =>
  parseTaskSpec({ name: 't', source: { host: 'h' }, destination: { host: 'h' }, objects: o }).objects;
const names = (sel: ReturnType<typeof selectTables>) =>
  sel.tables.map((x) => `${x.schema}.${x.table}->${x.targetSchema}.${x.targetTable}`).sort();

describe('selectTables', () => {
  it('selects every table when include is omitted, minus excludes', () => {
    const sel = selectTables(
      catalog,
      objects({ exclude: [{ schema: 'audit' }, { schema: 'public', tables: ['a'] }] }),
    );
    expect(names(sel)).toEqual([
      'Sales.Orders->Sales.Orders',
      'Sales.lines->Sales.lines',
      'public.B c->public.B c',
    ]);
    expect(sel.problems).toEqual([]);
  });

  it('applies schema and table renames, exact and case-sensitive', () => {
    const sel = selectTables(
      catalog,
      objects({
        include: [
          { schema: 'Sales', tables: ['Orders'], renameTo: 'sales', renameTables: { Orders: 'orders' } },
        ],
      }),
    );
    expect(names(sel)).toEqual(['Sales.Orders->sales.orders']);
  });

  it('names every missing object with its spec path', () => {
    const sel = selectTables(
      catalog,
      objects({
        include: [
          { schema: 'sales' },
          { schema: 'Sales', tables: ['orders', 'lines'], renameTables: { ghost: 'g' } },
        ],
      }),
    );
    expect(sel.problems).toEqual([
      {
        path: 'objects.include[0].schema',
        message: 'schema "sales" does not exist on the source (names are case-sensitive)',
      },
      {
        path: 'objects.include[1].tables[0]',
        message: 'table "Sales"."orders" does not exist on the source (names are case-sensitive)',
      },
      { path: 'objects.include[1].renameTables', message: 'renames "Sales"."ghost", which is not selected' },
    ]);
  });

  it('refuses two tables mapped onto one', () => {
    const sel = selectTables(
      catalog,
      objects({ include: [{ schema: 'Sales', renameTables: { Orders: 'x', lines: 'x' } }] }),
    );
    expect(sel.problems[0].message).toBe(
      '"Sales"."Orders" and "Sales"."lines" would both become "Sales"."x"',
    );
  });
});

describe('newTableRule: which tables created after the task started it streams', () => {
  it('takes new tables of the schemas taken whole, minus excludes; with include omitted, of every user schema, new ones too', () => {
    const all = newTableRule(
      objects({ exclude: [{ schema: 'audit' }, { schema: 'Sales', tables: ['tmp'] }] }),
    );
    expect(all).toEqual({
      schemas: null,
      excludedSchemas: ['audit'],
      excluded: [{ schema: 'Sales', table: 'tmp' }],
    });
    expect(takesNewTable(all, 'Sales', 'New one')).toBe(true);
    expect(takesNewTable(all, 'created later', 'x')).toBe(true);
    expect(takesNewTable(all, 'Sales', 'tmp')).toBe(false);
    expect(takesNewTable(all, 'audit', 'x')).toBe(false);
    expect(takesNewTable(all, 'pgferry', 'x')).toBe(false);
    expect(takesNewTable(all, 'pg_temp_3', 'x')).toBe(false);
    expect(takesNewTable(all, 'information_schema', 'x')).toBe(false);

    const rule = newTableRule(
      objects({
        include: [{ schema: 'public' }, { schema: 'Sales', tables: ['Orders'] }, { schema: 'audit' }],
        exclude: [{ schema: 'public', tables: ['tmp'] }, { schema: 'audit' }],
      }),
    );
    expect(rule.schemas).toEqual(['public']);
    expect(takesNewTable(rule, 'public', 'fresh')).toBe(true);
    // Excluded by name, a schema chosen table by table, a schema excluded whole, one not included.
    expect(takesNewTable(rule, 'public', 'tmp')).toBe(false);
    expect(takesNewTable(rule, 'Sales', 'fresh')).toBe(false);
    expect(takesNewTable(rule, 'audit', 'fresh')).toBe(false);
    expect(takesNewTable(rule, 'created later', 'x')).toBe(false);
  });

  it('takes none in a schema with a rename: pgferry does not rewrite the statement that created them', () => {
    const rule = newTableRule(
      objects({
        include: [
          { schema: 'public', renameTo: 'app' },
          { schema: 'Sales', renameTables: { Orders: 'orders' } },
          { schema: 'audit', renameTo: 'audit' },
        ],
      }),
    );
    expect(rule.schemas).toEqual(['audit']);
  });
});
