import type { TargetTable } from './pg-row-applier';
import type { DecodedChange } from '@pgferry/avro';
import { planKeyedChanges, type KeyAction } from './change-plan';

const t: TargetTable = { schema: 's', table: 't', columns: ['id', 'name', 'doc'], key: ['id'] };
const source = { schema: 's', table: 't', lsn: null, snapshot: null };
const change = (
  op: DecodedChange['op'],
  after: Array<string | null> | null,
  before: Array<string | null> | null = null,
  unchangedToast: string[] = [],
): DecodedChange => ({ op, columns: ['doc', 'id', 'name'], before, after, unchangedToast, source });

const show = (a: KeyAction) =>
  a.kind === 'delete'
    ? `delete ${a.key}`
    : `upsert ${a.values.join('|')}${a.unchanged.size ? ` keep ${[...a.unchanged]}` : ''}`;

function plan(changes: DecodedChange[]): string[][] {
  return planKeyedChanges(t, changes).map((s) =>
    s.kind === 'truncate' ? ['truncate'] : [...s.actions.values()].map(show),
  );
}

describe('planKeyedChanges', () => {
  it('keeps the last change per key, reorders columns to the target, and cuts runs at truncates', () => {
    expect(
      plan([
        change('c', ['d1', '1', 'a']),
        change('u', ['d1b', '1', 'b']),
        change('c', ['d2', '2', 'x']),
        change('d', null, [null, '2', null]),
        change('t', null),
        change('r', ['d3', '3', 'c']),
      ]),
    ).toEqual([['upsert 1|b|d1b', 'delete 2'], ['truncate'], ['upsert 3|c|d3']]);
  });

  it('moves a row whose key changed: the old key is deleted, the new one written', () => {
    expect(plan([change('u', ['d', '5', 'n'], ['d', '4', 'n'])])).toEqual([['delete 4', 'upsert 5|n|d']]);
    // A chain inside one batch: 1 -> 2 -> 3 deletes 1 and 2, writes 3.
    expect(
      plan([
        change('c', ['d', '1', 'n']),
        change('u', ['d', '2', 'n'], ['d', '1', 'n']),
        change('u', ['d', '3', 'n'], ['d', '2', 'n']),
      ]),
    ).toEqual([['delete 1', 'delete 2', 'upsert 3|n|d']]);
  });

  it('never turns an unchanged TOAST column into NULL: it inherits from an earlier write in the batch, or stays out', () => {
    expect(plan([change('u', [null, '1', 'b'], null, ['doc'])])).toEqual([['upsert 1|b| keep doc']]);
    expect(plan([change('c', ['big', '1', 'a']), change('u', [null, '1', 'b'], null, ['doc'])])).toEqual([
      ['upsert 1|b|big'],
    ]);
    expect(
      plan([change('c', ['big', '1', 'a']), change('u', [null, '2', 'b'], ['big', '1', 'a'], ['doc'])]),
    ).toEqual([['delete 1', 'upsert 2|b|big']]);
  });

  it('names the table and the column when a record and the target disagree', () => {
    expect(() => planKeyedChanges({ ...t, columns: ['id', 'gone'] }, [change('c', ['d', '1', 'n'])])).toThrow(
      'change record for "s"."t" has no column "gone" (it has doc, id, name)',
    );
    expect(() => planKeyedChanges(t, [change('d', null, null)])).toThrow(
      'a delete record for "s"."t" has no before image; the source table needs a primary key or REPLICA IDENTITY FULL',
    );
  });
});
