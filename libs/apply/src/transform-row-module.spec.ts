import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DecodedChange } from '@pgferry/avro';
import type { RowFunction, TransformPlan } from '@pgferry/pg';
import { applyRowModule, moduleChanges } from './transform-row-module';
import { deleteFilteredSql, deleteKeysSql, requirePlannedColumns, upsertSql } from './transform-sql';

const PLAN: TransformPlan = {
  table: 'sales.orders',
  source: [
    { name: 'id', type: 'integer' },
    { name: 'amount', type: 'numeric' },
    { name: 'note', type: 'text' },
  ],
  output: [
    { name: 'order_id', expr: '"id"', from: 'rename', source: 'id' },
    { name: 'amount', expr: '"amount"', from: 'column', source: 'amount' },
  ],
  filter: '(amount >= 0)',
  module: '/m.js',
  sourceKey: ['id'],
  key: ['order_id'],
};
const COLS = ['id', 'amount', 'note'];

describe('applyRowModule', () => {
  const upper: RowFunction = (row) => ({ ...row, note: row.note?.toUpperCase() ?? null });
  it("gives the module the row by column names and takes back its values in the record's order", () => {
    const seen: unknown[] = [];
    const fn: RowFunction = (row, op) => {
      seen.push([row, op]);
      return upper(row, op);
    };
    expect(applyRowModule(fn, PLAN, COLS, ['1', '2.50', 'a'], 'u')).toEqual(['1', '2.50', 'A']);
    expect(seen).toEqual([[{ id: '1', amount: '2.50', note: 'a' }, 'u']]);
  });

  it('null leaves the row out', () => {
    expect(applyRowModule(() => null, PLAN, COLS, ['1', '2', null], 'c')).toBeNull();
  });

  it('refuses a changed key, a missing or extra column, a non-text value and a throw, naming the table and row', () => {
    const cases: Array<[RowFunction, string]> = [
      [(r) => ({ ...r, id: '2' }), 'changed key column id of the row (id=1): the key must stay as it is'],
      [({ note: _, ...r }) => r, 'left out column note of the row (id=1)'],
      [(r) => ({ ...r, extra: 'x' }), 'returned column(s) extra the source row does not have'],
      [(r) => ({ ...r, amount: 3 as unknown as string }), 'gave column amount a number'],
      [
        () => {
          throw new Error('boom');
        },
        'threw on the row (id=1): boom',
      ],
    ];
    for (const [fn, message] of cases)
      expect(() => applyRowModule(fn, PLAN, COLS, ['1', '2', 'n'], 'c')).toThrow(
        `transforms sales.orders: module /m.js ${message}`,
      );
  });
});

describe('moduleChanges', () => {
  it('turns an insert or update the module leaves out into a delete of its key; deletes pass as they are', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgferry-module-'));
    const module = join(dir, 'm.js');
    writeFileSync(module, 'module.exports = (row) => (Number(row.amount) < 0 ? null : row);\n');
    const change = (
      op: DecodedChange['op'],
      after: Array<string | null> | null,
      before: Array<string | null> | null = null,
    ): DecodedChange => ({
      op,
      columns: COLS,
      before,
      after,
      unchangedToast: [],
      source: { schema: 'sales', table: 'orders', lsn: 1n, snapshot: null },
    });
    const out = moduleChanges({ ...PLAN, module }, [
      change('c', ['1', '5', 'a']),
      change('u', ['1', '-1', 'a']),
      change('d', null, ['2', null, null]),
    ]);
    expect(out.map((c) => [c.op, c.before, c.after])).toEqual([
      ['c', null, ['1', '5', 'a']],
      ['d', ['1', '-1', 'a'], null],
      ['d', ['2', null, null], null],
    ]);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('transform SQL', () => {
  it('upserts the staged rows that pass the filter, through the view, on the destination key', () => {
    expect(upsertSql(PLAN, '"s"."o"', '"st"', false)).toBe(
      `INSERT INTO "s"."o" ("order_id", "amount") OVERRIDING SYSTEM VALUE SELECT "id" AS "order_id", "amount" AS "amount" FROM "st" WHERE COALESCE((amount >= 0), false) ON CONFLICT ("order_id") DO UPDATE SET "amount" = EXCLUDED."amount"`,
    );
    expect(upsertSql(PLAN, '"s"."o"', '"st"', true)).toContain(
      'SELECT DISTINCT ON ("id") "id" AS "order_id", "amount" AS "amount" FROM "st" WHERE COALESCE((amount >= 0), false) ORDER BY "id", ctid DESC',
    );
  });

  it('deletes the rows an update moved out of the filter, evaluating it over the stage alone', () => {
    expect(deleteFilteredSql(PLAN, '"s"."o"', '"st"')).toBe(
      `DELETE FROM "s"."o" AS d USING (SELECT "id" AS pgferry_k0 FROM "st" WHERE NOT COALESCE((amount >= 0), false)) AS s WHERE d."order_id" = s.pgferry_k0`,
    );
    expect(deleteFilteredSql({ ...PLAN, filter: null }, '"s"."o"', '"st"')).toBeNull();
    expect(deleteKeysSql(PLAN, '"s"."o"', '"k"')).toBe(
      `DELETE FROM "s"."o" AS d USING "k" AS s WHERE d."order_id" = s."id"`,
    );
  });

  it('refuses records with a column the transform was planned without', () => {
    expect(() => requirePlannedColumns(PLAN, ['id', 'amount'])).not.toThrow();
    expect(() => requirePlannedColumns(PLAN, ['id', 'amount', 'added'])).toThrow(
      'records of sales.orders have column(s) added, which its transform was planned without',
    );
  });
});
