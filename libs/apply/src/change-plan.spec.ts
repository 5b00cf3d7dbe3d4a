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

  it('writes the new key of a row whose key changed; the old key goes by its own delete record', () => {
    // The capture sends the old key's delete on the old key's partition: this batch may hold it or not.
    expect(plan([change('u', ['d', '5', 'n'], ['d', '4', 'n'])])).toEqual([['upsert 5|n|d']]);
    expect(plan([change('u', ['d', '5', 'n'], ['d', '4', 'n']), change('d', null, ['d', '4', 'n'])])).toEqual(
      [['upsert 5|n|d', 'delete 4']],
    );
    // A chain inside one partition's batch: 1 -> 2 -> 3, each old key's delete after its move.
    expect(
      plan([
        change('c', ['d', '1', 'n']),
        change('u', ['d', '2', 'n'], ['d', '1', 'n']),
        change('d', null, ['d', '1', 'n']),
        change('u', ['d', '3', 'n'], ['d', '2', 'n']),
        change('d', null, ['d', '2', 'n']),
      ]),
    ).toEqual([['delete 1', 'delete 2', 'upsert 3|n|d']]);
  });

  it("never deletes a row the old key's partition wrote since: a key moved away and back", () => {
    // Partition of key 1005: the move 5 -> 1005, then 1005's own delete when it moved back to 5.
    // Applied after the partition of key 5 re-created 5, it must leave 5 alone.
    expect(
      plan([change('u', ['d', '1005', 'n'], ['d', '5', 'n']), change('d', null, ['d', '1005', 'n'])]),
    ).toEqual([['delete 1005']]);
  });

  it('applies a delete before a move onto the same key in the batch (a new run), never instead of it', () => {
    // DELETE key 40; UPDATE key 7 SET key = 40, its TOASTed doc unsent: the move needs row 7 and a free key 40.
    expect(
      planKeyedChanges(t, [
        change('d', null, ['d', '40', 'n']),
        change('u', [null, '40', 'm'], ['d', '7', 'm'], ['doc']),
        change('d', null, ['d', '7', 'm']),
      ]).map((s) =>
        s.kind === 'truncate'
          ? 'truncate'
          : [...s.actions.values()].map((a) =>
              a.kind === 'move' ? `move ${a.from} -> ${a.values}` : show(a),
            ),
      ),
    ).toEqual([['delete 40'], ['move 7 -> 40,m,', 'delete 7']]);
  });

  it('never turns an unchanged TOAST column into NULL: it inherits from an earlier write in the batch, or stays out', () => {
    expect(plan([change('u', [null, '1', 'b'], null, ['doc'])])).toEqual([['upsert 1|b| keep doc']]);
    expect(plan([change('c', ['big', '1', 'a']), change('u', [null, '1', 'b'], null, ['doc'])])).toEqual([
      ['upsert 1|b|big'],
    ]);
    expect(
      plan([change('c', ['big', '1', 'a']), change('u', [null, '2', 'b'], ['big', '1', 'a'], ['doc'])]),
    ).toEqual([['upsert 1|a|big', 'upsert 2|b|big']]);
  });

  it('moves the old row when neither the key change nor an earlier update of it sent a TOAST column', () => {
    expect(
      planKeyedChanges(t, [
        change('d', null, ['d', '40', 'n']),
        change('u', [null, '7', 'b'], null, ['doc']),
        change('u', [null, '40', 'c'], ['d', '7', 'b'], ['doc']),
        change('d', null, ['d', '7', 'b']),
      ]).map((s) =>
        s.kind === 'truncate'
          ? 'truncate'
          : [...s.actions.values()].map((a) =>
              a.kind === 'move' ? `move ${a.from} -> ${a.values} keep ${[...a.unchanged]}` : show(a),
            ),
      ),
    ).toEqual([['delete 40'], ['move 7 -> 40,c, keep doc', 'delete 7']]);
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
