import { DataError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import type { TargetTable } from './pg-row-applier';
import type { DecodedChange } from '@pgferry/avro';

/** The last state of one key after a run of changes: written whole, or gone. */
export type KeyAction =
  | { kind: 'upsert'; values: Array<string | null>; unchanged: ReadonlySet<string> }
  | { kind: 'delete'; key: Array<string | null> }
  /**
   * The row moved to a new key and the source did not send some TOAST columns: they are only on
   * the destination's row under the old key, so the move is an UPDATE of that row.
   */
  | {
      kind: 'move';
      from: Array<string | null>;
      values: Array<string | null>;
      unchanged: ReadonlySet<string>;
    };

/**
 * A run of changes of one table reduced to one action per key, and where truncates cut it:
 * `steps` alternate reduced runs and truncates, in source order. Pure.
 */
export type PlanStep =
  { kind: 'run'; actions: Map<string, KeyAction> } | { kind: 'truncate'; lsn: bigint | null };

/** Positions of the target's columns inside a change's column list. */
export function columnIndex(t: TargetTable, change: DecodedChange): number[] {
  const at = new Map(change.columns.map((c, i) => [c, i]));
  return t.columns.map((c) => {
    const i = at.get(c);
    if (i === undefined)
      throw new DataError(
        `change record for ${quoteQualified(t.schema, t.table)} has no column "${c}" (it has ${change.columns.join(', ')}); the destination table and the record's schema disagree`,
      );
    return i;
  });
}

const keyText = (key: ReadonlyArray<string | null>) => JSON.stringify(key);

/**
 * Reduces changes of a keyed table (in source order) to one action per key. Per-key ordering
 * is the guarantee: the last change of each key wins; an UPDATE that changes the key deletes the
 * old key and writes the new one; a later change of a key whose earlier upsert is in the same run
 * inherits the TOAST values that change left out, so nothing unchanged is written as NULL.
 * Snapshot reads ('r') behave like inserts.
 */
export function planKeyedChanges(t: TargetTable, changes: readonly DecodedChange[]): PlanStep[] {
  const steps: PlanStep[] = [];
  let actions = new Map<string, KeyAction>();
  const keyPos = t.key.map((k) => t.columns.indexOf(k));
  for (const ch of changes) {
    if (ch.op === 't') {
      if (actions.size) steps.push({ kind: 'run', actions });
      actions = new Map();
      steps.push({ kind: 'truncate', lsn: ch.source.lsn });
      continue;
    }
    const idx = columnIndex(t, ch);
    const pick = (row: ReadonlyArray<string | null>) => idx.map((i) => row[i]);
    if (ch.op === 'd') {
      const before = ch.before ? pick(ch.before) : null;
      if (!before) throw missingImage(t, 'delete', 'before');
      const key = keyPos.map((p) => before[p]);
      actions.set(keyText(key), { kind: 'delete', key });
      continue;
    }
    if (!ch.after) throw missingImage(t, ch.op === 'u' ? 'update' : 'insert', 'after');
    const values = pick(ch.after);
    const key = keyPos.map((p) => values[p]);
    const k = keyText(key);
    if (ch.op === 'u' && ch.before) {
      const before = pick(ch.before);
      const oldKey = keyPos.map((p) => before[p]);
      const o = keyText(oldKey);
      if (o !== k) {
        const previous = actions.get(o);
        actions.set(o, { kind: 'delete', key: oldKey });
        // The row moved: what the old key's pending upsert held travels with it.
        if (previous?.kind === 'upsert') actions.set(k, inherit(t, values, ch.unchangedToast, previous));
        else if (ch.unchangedToast.length) {
          actions.delete(o);
          actions.set(k, { kind: 'move', from: oldKey, values, unchanged: new Set(ch.unchangedToast) });
        } else actions.set(k, { kind: 'upsert', values, unchanged: new Set(ch.unchangedToast) });
        continue;
      }
    }
    const previous = actions.get(k);
    // Delete-then-upsert keeps the delete's effect only through the upsert overwriting the row;
    // unchanged TOAST after a delete cannot happen (the row was re-inserted whole first).
    actions.set(
      k,
      previous?.kind === 'upsert'
        ? inherit(t, values, ch.unchangedToast, previous)
        : previous?.kind === 'move'
          ? {
              kind: 'move',
              from: previous.from,
              values: merge(t, values, ch.unchangedToast, previous),
              unchanged: new Set([...previous.unchanged].filter((c) => ch.unchangedToast.includes(c))),
            }
          : { kind: 'upsert', values, unchanged: new Set(ch.unchangedToast) },
    );
  }
  if (actions.size) steps.push({ kind: 'run', actions });
  return steps;
}

/** A later change of a moved row: what it left out comes from the move (still unsent ones stay so). */
function merge(
  t: TargetTable,
  values: Array<string | null>,
  unchanged: readonly string[],
  previous: Extract<KeyAction, { kind: 'move' }>,
): Array<string | null> {
  const out = values.slice();
  for (const c of unchanged) {
    const i = t.columns.indexOf(c);
    if (i >= 0) out[i] = previous.values[i];
  }
  return out;
}

function inherit(
  t: TargetTable,
  values: Array<string | null>,
  unchanged: readonly string[],
  previous: Extract<KeyAction, { kind: 'upsert' }>,
): KeyAction {
  if (unchanged.length === 0) return { kind: 'upsert', values, unchanged: new Set() };
  const merged = values.slice();
  const still = new Set<string>();
  for (const c of unchanged) {
    const i = t.columns.indexOf(c);
    if (i < 0) continue;
    if (previous.unchanged.has(c)) still.add(c);
    else merged[i] = previous.values[i];
  }
  return { kind: 'upsert', values: merged, unchanged: still };
}

function missingImage(t: TargetTable, what: string, image: string): DataError {
  return new DataError(
    `a ${what} record for ${quoteQualified(t.schema, t.table)} has no ${image} image; the source table needs a primary key or REPLICA IDENTITY FULL`,
  );
}
