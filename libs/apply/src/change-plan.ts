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

/**
 * A key's identity in a run. One column (nearly every key) is its text; NUL, which no
 * PostgreSQL text holds, stands for NULL. Longer keys are their JSON.
 */
const keyText = (key: ReadonlyArray<string | null>) =>
  key.length === 1 ? (key[0] ?? '\u0000') : JSON.stringify(key);

/** The unchanged-column set of the many actions that have none (never modified). */
const NONE: ReadonlySet<string> = new Set();
const unchangedSet = (names: readonly string[]): ReadonlySet<string> =>
  names.length ? new Set(names) : NONE;

/**
 * Reduces changes of a keyed table (in source order) to one action per key. Per-key ordering
 * is the guarantee: the last change of each key wins. An UPDATE that changes the key writes the
 * new key only: the old key's delete is its own record, on the old key's partition (the capture
 * publishes it there), so a batch of the new key's partition never deletes a row the old key's
 * partition wrote since. A later change of a key whose earlier upsert is in the same run
 * inherits the TOAST values that change left out, so nothing unchanged is written as NULL; an
 * action that needs the destination's row (a move, an upsert leaving columns out) on a key with
 * a delete pending in the run starts a new run after that delete. Snapshot reads ('r') behave
 * like inserts.
 */
export function planKeyedChanges(t: TargetTable, changes: readonly DecodedChange[]): PlanStep[] {
  const steps: PlanStep[] = [];
  let actions = new Map<string, KeyAction>();
  const keyPos = t.key.map((k) => t.columns.indexOf(k));
  // Every change of a record schema shares its column list: its index is made once, and is
  // skipped where the target's columns are the record's, in order (then images are not copied;
  // nothing here writes into them).
  let lastColumns: readonly string[] | null = null;
  let idx: number[] = [];
  let inOrder = false;
  const pick = (row: Array<string | null>) => (inOrder ? row : idx.map((i) => row[i]));
  for (const ch of changes) {
    if (ch.op === 't') {
      if (actions.size) steps.push({ kind: 'run', actions });
      actions = new Map();
      steps.push({ kind: 'truncate', lsn: ch.source.lsn });
      continue;
    }
    if (ch.columns !== lastColumns) {
      idx = columnIndex(t, ch);
      inOrder = idx.length === ch.columns.length && idx.every((at, i) => at === i);
      lastColumns = ch.columns;
    }
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
    /** Sets k's action; one that needs the destination's row waits for a delete of k pending in this run. */
    const set = (action: KeyAction) => {
      const needsRow = action.kind === 'move' || (action.kind === 'upsert' && action.unchanged.size > 0);
      if (needsRow && actions.get(k)?.kind === 'delete') {
        steps.push({ kind: 'run', actions });
        actions = new Map();
      }
      actions.set(k, action);
    };
    if (ch.op === 'u' && ch.before) {
      const before = pick(ch.before);
      const oldKey = keyPos.map((p) => before[p]);
      const o = keyText(oldKey);
      if (o !== k) {
        const previous = actions.get(o);
        // The row moved: what the old key's pending upsert held travels with it. What neither
        // sent is in the old key's row on the destination: then it is a move of that row.
        const inherited =
          previous?.kind === 'upsert' ? inherit(t, values, ch.unchangedToast, previous) : null;
        if (inherited?.kind === 'upsert' && inherited.unchanged.size === 0) set(inherited);
        else if (inherited?.kind === 'upsert') {
          actions.delete(o);
          set({ kind: 'move', from: oldKey, values: inherited.values, unchanged: inherited.unchanged });
        } else if (ch.unchangedToast.length) {
          // The unsent values are in the old key's row on the destination: the move updates it.
          actions.delete(o);
          set({ kind: 'move', from: oldKey, values, unchanged: unchangedSet(ch.unchangedToast) });
        } else set({ kind: 'upsert', values, unchanged: NONE });
        continue;
      }
    }
    const previous = actions.get(k);
    // Delete-then-upsert keeps the delete's effect only through the upsert overwriting the row.
    set(
      previous?.kind === 'upsert'
        ? inherit(t, values, ch.unchangedToast, previous)
        : previous?.kind === 'move'
          ? {
              kind: 'move',
              from: previous.from,
              values: merge(t, values, ch.unchangedToast, previous),
              unchanged: new Set([...previous.unchanged].filter((c) => ch.unchangedToast.includes(c))),
            }
          : { kind: 'upsert', values, unchanged: unchangedSet(ch.unchangedToast) },
    );
  }
  if (actions.size) steps.push({ kind: 'run', actions });
  return steps;
}

/** Whether an UPDATE changes the row's key (its old key's delete is a record of its own). */
export function movesKey(key: readonly string[], ch: DecodedChange): boolean {
  if (ch.op !== 'u' || !ch.before || !ch.after) return false;
  return key.some((k) => {
    const i = ch.columns.indexOf(k);
    return i >= 0 && ch.before![i] !== ch.after![i];
  });
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
  if (unchanged.length === 0) return { kind: 'upsert', values, unchanged: NONE };
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
