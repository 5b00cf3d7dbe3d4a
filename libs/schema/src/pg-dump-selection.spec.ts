import { SpecError } from '@pgferry/core';
import { buildDumpSelection, type SelectionCatalog } from './pg-dump-selection';

const CATALOG: SelectionCatalog = {
  schemas: ['app', 'Sales Dept', 'pgferry', 'public'],
  relations: [
    { schema: 'app', name: 'customers', kind: 'r' },
    { schema: 'app', name: 'customers_id_seq', kind: 'S', ownedBy: { schema: 'app', name: 'customers' } },
    { schema: 'app', name: 'gadgets', kind: 'r' },
    { schema: 'app', name: 'gadgets_id_seq', kind: 'S', ownedBy: { schema: 'app', name: 'gadgets' } },
    { schema: 'app', name: 'measurements', kind: 'p' },
    { schema: 'app', name: 'measurements_2024', kind: 'r', parent: { schema: 'app', name: 'measurements' } },
    { schema: 'app', name: 'm_2024_q1', kind: 'r', parent: { schema: 'app', name: 'measurements_2024' } },
    { schema: 'app', name: 'v_customers', kind: 'v' },
    { schema: 'app', name: 'mv', kind: 'm' },
    { schema: 'app', name: 'free_seq', kind: 'S' },
    { schema: 'Sales Dept', name: 'Order "Lines"', kind: 'r' },
    { schema: 'Sales Dept', name: 'a.b*', kind: 'r' },
    { schema: 'pgferry', name: 'heartbeat', kind: 'r' },
  ],
};

describe('buildDumpSelection', () => {
  it('without include: every schema but pgferry', () => {
    expect(buildDumpSelection({}, CATALOG)).toEqual({
      args: ['-N', '"pgferry"'],
      schemas: ['app', 'Sales Dept', 'public'],
      wholeDatabase: true,
      schemaRenames: [],
      tableRenames: [],
      columnLists: [],
    });
  });

  it('whole schemas with -n, excluded schemas and tables with -N / -T (partitions and owned sequences follow)', () => {
    const sel = buildDumpSelection(
      {
        include: [{ schema: 'app' }, { schema: 'Sales Dept' }],
        exclude: [{ schema: 'app', tables: ['measurements', 'gadgets'] }, { schema: 'public' }],
      },
      CATALOG,
    );
    expect(sel.args).toEqual([
      '-n',
      '"app"',
      '-n',
      '"Sales Dept"',
      '-N',
      '"pgferry"',
      '-N',
      '"public"',
      '-T',
      '"app"."gadgets"',
      '-T',
      '"app"."gadgets_id_seq"',
      '-T',
      '"app"."measurements"',
      '-T',
      '"app"."measurements_2024"',
      '-T',
      '"app"."m_2024_q1"',
    ]);
    expect(sel.schemas).toEqual(['app', 'Sales Dept']);
    expect(sel.wholeDatabase).toBe(false);
  });

  it('listed tables: the other tables, views and materialized views of the schema are left out', () => {
    const sel = buildDumpSelection(
      {
        include: [
          { schema: 'app', tables: ['customers', 'measurements'] },
          { schema: 'Sales Dept', tables: ['a.b*'] },
        ],
      },
      CATALOG,
    );
    expect(sel.args).toEqual([
      '-n',
      '"app"',
      '-n',
      '"Sales Dept"',
      '-N',
      '"pgferry"',
      '-T',
      '"app"."gadgets"',
      '-T',
      '"app"."gadgets_id_seq"',
      '-T',
      '"app"."v_customers"',
      '-T',
      '"app"."mv"',
      '-T',
      '"Sales Dept"."Order ""Lines"""',
    ]);
  });

  it('merges entries for the same schema and collects renames', () => {
    const sel = buildDumpSelection(
      {
        include: [
          { schema: 'Sales Dept', tables: ['Order "Lines"'], renameTo: 'sales' },
          {
            schema: 'Sales Dept',
            tables: ['a.b*'],
            renameTables: { 'a.b*': 'ab', 'Order "Lines"': 'order_lines' },
          },
          { schema: 'app', renameTables: { customers: 'gadgets', gadgets: 'customers' } },
        ],
      },
      CATALOG,
    );
    expect(sel.schemaRenames).toEqual([{ from: 'Sales Dept', to: 'sales' }]);
    expect(sel.tableRenames).toEqual([
      { schema: 'Sales Dept', from: 'a.b*', to: 'ab', kind: 'r' },
      { schema: 'Sales Dept', from: 'Order "Lines"', to: 'order_lines', kind: 'r' },
      { schema: 'app', from: 'customers', to: 'gadgets', kind: 'r' },
      { schema: 'app', from: 'gadgets', to: 'customers', kind: 'r' },
    ]);
    expect(sel.args).toEqual(['-n', '"Sales Dept"', '-n', '"app"', '-N', '"pgferry"']);
  });

  it('reports every problem with its spec path', () => {
    let err: unknown;
    try {
      buildDumpSelection(
        {
          include: [
            { schema: 'nope' },
            {
              schema: 'app',
              tables: ['customers', 'ghost', 'free_seq'],
              renameTables: { gadgets: 'g', customers: 'customers_id_seq' },
            },
            { schema: 'Sales Dept', renameTo: 'x' },
            { schema: 'public', renameTo: 'x' },
          ],
          exclude: [{ schema: 'gone' }, { schema: 'app', tables: ['phantom'] }],
        },
        CATALOG,
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).issues).toEqual([
      'objects.exclude[0].schema: the source has no schema "gone"',
      'objects.exclude[1].tables: the source schema "app" has no table "phantom"',
      'objects.include[0].schema: the source has no schema "nope"',
      'objects.include[1].tables: the source schema "app" has no table "ghost"',
      'objects.include[1].tables: the source schema "app" has no table "free_seq"',
      'objects.include[1].renameTables: "gadgets" is not a selected table of schema "app"',
      'objects.include[1].renameTables: "customers" and "customers_id_seq" of schema "app" would both be named "customers_id_seq"',
      'objects.include[3].renameTo: schema "public" and "Sales Dept" would both become "x"',
    ]);
  });
});
