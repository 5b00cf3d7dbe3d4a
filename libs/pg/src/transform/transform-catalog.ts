import type { Client } from 'pg';
import { ObjectError, type NameCase, type TransformSpec } from '@pgferry/core';
import { classifyPgError } from '../classify';
import { quoteQualified } from '../ident';
import { tableKey, type SelectedTable } from '../selection';
import {
  casePlan,
  caseProblems,
  planTransform,
  type SourceColumn,
  type TransformPlan,
  type TransformProblem,
} from './transform-plan';

/** The source table a transform names, split from `schema.table`. */
export function transformTable(spec: TransformSpec): { schema: string; table: string } {
  const dot = spec.table.indexOf('.');
  return { schema: spec.table.slice(0, dot), table: spec.table.slice(dot + 1) };
}

/** A source table's columns in order, with their types as the source names them. Read-only. */
export async function readSourceColumns(
  client: Client,
  schema: string,
  table: string,
): Promise<SourceColumn[]> {
  const name = quoteQualified(schema, table);
  try {
    const { rows } = await client.query(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type, attnotnull AS "notNull",
              attgenerated <> '' AS generated
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
        ORDER BY attnum`,
      [name],
    );
    return rows;
  } catch (err) {
    throw classifyPgError(err, `reading the columns of ${name} on the source`);
  }
}

/** One transform against the selection: the selected table it is for (or null), its plan and problems. */
export interface PlannedTransform {
  spec: TransformSpec;
  table: SelectedTable | null;
  plan: TransformPlan | null;
  problems: TransformProblem[];
}

/**
 * Plans every transform of the spec against the source (`client`, read-only) and the task's
 * selected `tables` (over a table's listed columns when it has a column list): a transform of
 * a table the task does not select is a problem of its own, as are two destination columns
 * that `nameCase` makes one. The plans keep the transform's own names (see casePlan).
 */
export async function planTransforms(
  client: Client,
  transforms: readonly TransformSpec[],
  tables: readonly SelectedTable[],
  nameCase?: NameCase,
): Promise<PlannedTransform[]> {
  const out: PlannedTransform[] = [];
  for (const spec of transforms) {
    const { schema, table } = transformTable(spec);
    const selected = tables.find((t) => t.schema === schema && t.table === table) ?? null;
    if (!selected) {
      out.push({
        spec,
        table: null,
        plan: null,
        problems: [
          {
            message: `transforms names table ${spec.table}, which the task does not select on the source: correct the name (schema.table, as the source spells it) or add the table to objects.include`,
          },
        ],
      });
      continue;
    }
    // Under a column list the records carry the listed columns alone: the transform reads those.
    const all = await readSourceColumns(client, schema, table);
    const listed = selected.columns;
    const columns = listed ? all.filter((c) => listed.includes(c.name)) : all;
    const unlisted = new Set(all.filter((c) => !columns.includes(c)).map((c) => c.name));
    const { plan, problems } = planTransform(spec, columns, tableKey(selected), unlisted);
    problems.push(...caseProblems(plan, nameCase));
    if (!tableKey(selected).length)
      problems.push({
        message: `${spec.table} has no primary key or unique NOT NULL key: a transformed table is applied by key; give it a primary key on the source`,
      });
    out.push({ spec, table: selected, plan, problems });
  }
  return out;
}

/**
 * The plans by source table (`schema.table`), their destination names in `nameCase`
 * (casePlan), for a task whose precheck passed: a problem here (the source changed since) is
 * an ObjectError naming every one.
 */
export async function readTransformPlans(
  client: Client,
  transforms: readonly TransformSpec[],
  tables: readonly SelectedTable[],
  nameCase?: NameCase,
): Promise<Map<string, TransformPlan>> {
  const planned = await planTransforms(client, transforms, tables, nameCase);
  const problems = planned.flatMap((p) => p.problems.map((x) => `transforms ${p.spec.table}: ${x.message}`));
  if (problems.length)
    throw new ObjectError(`the task's transforms do not fit the source:\n  - ${problems.join('\n  - ')}`);
  return new Map(planned.map((p) => [p.spec.table, casePlan(p.plan!, nameCase)]));
}
