import { DataError } from '@pgferry/core';
import {
  loadRowModule,
  type ModuleOp,
  type ModuleRow,
  type RowFunction,
  type TransformPlan,
} from '@pgferry/pg';
import type { DecodedChange } from '@pgferry/avro';

/**
 * `values` (in `columns` order) through the module: the values it returns in the same order, or
 * null when it leaves the row out. The row it returns must have exactly the source's columns
 * and keep the key; anything else, or a throw, is a DataError naming the table and the row's key.
 */
export function applyRowModule(
  fn: RowFunction,
  plan: TransformPlan,
  columns: readonly string[],
  values: ReadonlyArray<string | null>,
  op: ModuleOp,
): Array<string | null> | null {
  const row: ModuleRow = {};
  columns.forEach((c, i) => (row[c] = values[i]));
  const keyText = () => plan.sourceKey.map((k) => `${k}=${row[k]}`).join(', ');
  let out: ModuleRow | null;
  try {
    out = fn({ ...row }, op);
  } catch (err) {
    throw new DataError(
      `transforms ${plan.table}: module ${plan.module} threw on the row (${keyText()}): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (out === null) return null;
  if (typeof out !== 'object' || out === undefined)
    throw new DataError(
      `transforms ${plan.table}: module ${plan.module} returned ${typeof out} for the row (${keyText()}): return the row object, or null to leave the row out`,
    );
  const extra = Object.keys(out).filter((k) => !columns.includes(k));
  if (extra.length)
    throw new DataError(
      `transforms ${plan.table}: module ${plan.module} returned column(s) ${extra.join(', ')} the source row does not have (row ${keyText()}): return only the source's columns; add columns with transforms[].add`,
    );
  return columns.map((c) => {
    const v = out![c];
    if (v === undefined)
      throw new DataError(
        `transforms ${plan.table}: module ${plan.module} left out column ${c} of the row (${keyText()}): return every column of the row it was given`,
      );
    if (v !== null && typeof v !== 'string')
      throw new DataError(
        `transforms ${plan.table}: module ${plan.module} gave column ${c} a ${typeof v} (row ${keyText()}): values are PostgreSQL text forms, strings or null`,
      );
    if (plan.sourceKey.includes(c) && v !== row[c])
      throw new DataError(
        `transforms ${plan.table}: module ${plan.module} changed key column ${c} of the row (${keyText()}): the key must stay as it is`,
      );
    return v;
  });
}

/**
 * A table's changes through its module, in order: an insert or update the module leaves out
 * becomes a delete of its key (a row that leaves the view leaves the destination; a delete of
 * a row that is not there is a no-op). Deletes and truncates pass as they are.
 */
export function moduleChanges(plan: TransformPlan, changes: readonly DecodedChange[]): DecodedChange[] {
  const fn = loadRowModule(plan);
  return changes.map((ch) => {
    if ((ch.op !== 'c' && ch.op !== 'u' && ch.op !== 'r') || !ch.after) return ch;
    const after = applyRowModule(fn, plan, ch.columns, ch.after, ch.op);
    if (after) return { ...ch, after };
    return { ...ch, op: 'd', before: ch.after, after: null };
  });
}
