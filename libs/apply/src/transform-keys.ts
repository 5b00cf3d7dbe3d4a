import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteIdentList, quoteQualified, type SelectedTable } from '@pgferry/pg';
import type { ApplierTarget } from './applier';
import { hasUniqueIndexOn } from './pg-apply-session';

/**
 * Before the load, gives each transformed destination table its key under the destination's
 * names (the source's primary key, renamed columns renamed), named as on the source so the
 * post-data restore finds it and skips it. Transformed tables get it before their rows, not
 * after as prepareKeyConstraints does for the others: their rows are written through the view
 * with INSERT ... ON CONFLICT on the key. Idempotent.
 */
export async function createTransformedKeys(
  source: Client,
  destination: Client,
  tables: readonly SelectedTable[],
  targets: readonly ApplierTarget[],
): Promise<void> {
  for (const [i, t] of tables.entries()) {
    const plan = targets[i].transform;
    if (!plan) continue;
    const target = quoteQualified(t.targetSchema, t.targetTable);
    try {
      if (await hasUniqueIndexOn(destination, target, plan.key)) continue;
      const { rows } = await source.query(
        `SELECT c.conname FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'p'`,
        [quoteQualified(t.schema, t.table)],
      );
      await destination.query(
        rows.length
          ? `ALTER TABLE ${target} ADD CONSTRAINT ${quoteIdent(rows[0].conname)} PRIMARY KEY (${quoteIdentList(plan.key)})`
          : `CREATE UNIQUE INDEX ON ${target} (${quoteIdentList(plan.key)})`,
      );
    } catch (err) {
      throw classifyPgError(err, `creating the key of transformed table ${target} on the destination`);
    }
  }
}
