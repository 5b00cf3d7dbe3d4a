import { SpecError } from '@pgferry/core';
import type { TransformPlan } from './transform-plan';

/** A source row as a module sees it: column name -> PostgreSQL text form (null for NULL). */
export type ModuleRow = Record<string, string | null>;
/** `r` a snapshot row, `c` an insert, `u` an update (the row after it). */
export type ModuleOp = 'r' | 'c' | 'u';
export type RowFunction = (row: ModuleRow, op: ModuleOp) => ModuleRow | null;

const loaded = new Map<string, RowFunction>();

/**
 * The function a transform module exports (`module.exports = fn`, or `exports.default = fn`),
 * loaded once per process. A module that does not load or does not export a function is a
 * SpecError naming the table, the file and the fix.
 */
export function loadRowModule(plan: Pick<TransformPlan, 'table' | 'module'>): RowFunction {
  const path = plan.module!;
  const known = loaded.get(path);
  if (known) return known;
  let exported: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    exported = require(path);
  } catch (err) {
    throw new SpecError(
      [
        `transforms ${plan.table}: module ${path} does not load (${(err as Error).message.split('\n')[0]}): correct transforms[].module (a CommonJS file, path relative to the directory pgferry runs in)`,
      ],
      { cause: err },
    );
  }
  const fn = typeof exported === 'function' ? exported : (exported as { default?: unknown } | null)?.default;
  if (typeof fn !== 'function')
    throw new SpecError([
      `transforms ${plan.table}: module ${path} does not export a function: export (row, op) => row | null as module.exports or exports.default`,
    ]);
  loaded.set(path, fn as RowFunction);
  return fn as RowFunction;
}
