import type { Client } from 'pg';
import type { ParseResult } from 'libpg-query';
import type { TaskSpec } from '@pgferry/core';
import {
  loadRowModule,
  planTransforms,
  quoteIdent,
  quoteQualified,
  type SelectedTable,
  type TransformPlan,
} from '@pgferry/pg';
import { alterTableReplicaIdentity } from './grant-statements';
import type { PrecheckItem } from './precheck-report';

/**
 * The transform items (`transforms:` of the spec, docs/transforms.md): each transform checked
 * against the source's table (read-only: the catalog, and EXPLAIN of its expressions over the
 * table, which plans them without running them). One failed item per problem, naming the table,
 * the column and the fix: a table the task does not select, an unknown column (under a column
 * list, objects.include[].columns: one the list leaves out), a key column dropped or masked,
 * two destination columns of one name (also once objects.nameCase cased them), an expression
 * that does not parse (PostgreSQL's own parser, libpg-query) or is not one expression, one the source refuses (an
 * unknown column or function, a filter that is not boolean) or that aggregates rows, a module
 * that does not load or does not export a function. A passed item per transform that fits.
 */
export async function checkTransforms(
  source: Client,
  spec: TaskSpec,
  tables: readonly SelectedTable[],
): Promise<PrecheckItem[]> {
  if (!spec.transforms.length) return [];
  const items: PrecheckItem[] = [];
  for (const planned of await planTransforms(source, spec.transforms, tables, spec.objects.nameCase)) {
    const table = planned.spec.table;
    const failed = (column: string | undefined, message: string, fix: string): PrecheckItem => ({
      id: `transforms:${table}${column ? `.${column}` : ''}`,
      name: 'transform',
      level: 'failed',
      object: column ? `${table}.${quoteIdent(column)}` : table,
      message: `transforms ${table}: ${message}`,
      fix,
    });
    const found = planned.problems.map((p) =>
      failed(p.column, p.message, `correct transforms[] for ${table} in the task spec`),
    );
    if (planned.plan && planned.table) {
      // Under a column list the expressions see the listed columns alone, as the applier does.
      const t = planned.table;
      const relation = t.columns
        ? `(SELECT ${planned.plan.source.map((c) => quoteIdent(c.name)).join(', ')} FROM ONLY ${quoteQualified(t.schema, t.table)}) AS ${quoteIdent(t.table)}`
        : quoteQualified(t.schema, t.table);
      found.push(...(await checkExpressions(source, planned.plan, relation, failed)));
      if (planned.plan.module) {
        try {
          loadRowModule(planned.plan);
        } catch (err) {
          found.push(
            failed(
              undefined,
              (err as Error).message.replace(/^transforms \S+: /, ''),
              'correct transforms[].module',
            ),
          );
        }
      }
    }
    if (!found.length && planned.table && spec.migrationTypes.incremental) {
      const toast = await toastRisk(source, planned.table);
      if (toast) found.push(toast);
    }
    items.push(
      ...(found.length
        ? found
        : [
            {
              id: `transforms:${table}`,
              name: 'transform',
              level: 'passed' as const,
              object: table,
              message: `transforms ${table}: fits the source table (${planned.plan!.output.length} destination columns${planned.plan!.filter ? ', filtered' : ''}${planned.plan!.module ? ', with a module' : ''})`,
            },
          ]),
    );
  }
  return items;
}

/**
 * An alert for a streamed transformed table whose UPDATEs may leave a TOASTed value out of the
 * change (replica identity other than full, a column of a type that can be TOASTed): such a row
 * cannot be put through the view, and the applier stops on it (docs/transforms.md, Limits).
 */
async function toastRisk(source: Client, t: SelectedTable): Promise<PrecheckItem | null> {
  const relation = quoteQualified(t.schema, t.table);
  const { rows } = await source.query(
    `SELECT c.relreplident AS identity,
            array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                    AND NOT a.attisdropped AND a.attstorage <> 'p' ORDER BY a.attnum) AS all
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [relation],
  );
  const { identity, all } = rows[0] as { identity: string; all: string[] };
  // Under a column list only the listed columns are sent, and FULL is refused with one (check-filters.ts).
  const toastable = t.columns ? all.filter((c) => t.columns!.includes(c)) : all;
  if (identity === 'f' || !toastable.length) return null;
  const fix = t.columns
    ? `acknowledge, or leave the column list of ${relation} out, drop the columns with transforms[].drop and run ${alterTableReplicaIdentity(t.schema, t.table, { full: true })}`
    : alterTableReplicaIdentity(t.schema, t.table, { full: true });
  const remedy = t.columns
    ? `a column-limited table cannot have REPLICA IDENTITY FULL (PostgreSQL refuses UPDATE and DELETE on it once published with a column list): acknowledge if its values stay small, or leave its columns out with transforms[].drop instead of objects.include[].columns and give it REPLICA IDENTITY FULL`
    : `give the table REPLICA IDENTITY FULL on the source (every change then carries the whole row), or acknowledge if its values stay small`;
  return {
    id: `transforms-toast:${relation}`,
    name: 'transform',
    level: 'alert',
    object: relation,
    message: `transforms ${t.schema}.${t.table}: an UPDATE that leaves a large (TOASTed) value of ${toastable.map(quoteIdent).join(', ')} unchanged sends the row without it, and a transformed row cannot be computed without it: the applier would stop on such a change; ${remedy}`,
    fix,
  };
}

type Failed = (column: string | undefined, message: string, fix: string) => PrecheckItem;

/** Every add expression and the filter: parsed, then planned by the source over the table. */
async function checkExpressions(
  source: Client,
  plan: TransformPlan,
  relation: string,
  failed: Failed,
): Promise<PrecheckItem[]> {
  const items: PrecheckItem[] = [];
  const spec = plan.table;
  const exprs: Array<{ column?: string; what: string; sql: string; wrap: (e: string) => string }> = [];
  for (const o of plan.output.filter((x) => x.from === 'add'))
    exprs.push({
      column: o.name,
      what: `add ${o.name}`,
      sql: o.expr,
      wrap: (e) => `SELECT ${e} AS v FROM ${relation}`,
    });
  if (plan.filter)
    exprs.push({ what: 'filter', sql: plan.filter, wrap: (e) => `SELECT 1 FROM ${relation} WHERE ${e}` });
  for (const x of exprs) {
    const shown = x.sql.slice(1, -1);
    const problem = await parseProblem(shown, x.wrap(x.sql), x.what === 'filter');
    if (problem) {
      items.push(
        failed(
          x.column,
          `${x.what}: "${shown}" ${problem}`,
          `write ${x.what} as one SQL expression over the columns of ${spec}`,
        ),
      );
      continue;
    }
    try {
      const { rows } = await source.query(`EXPLAIN (FORMAT JSON) ${x.wrap(x.sql)}`);
      const top = JSON.stringify(rows[0]['QUERY PLAN']);
      if (/"Node Type":"(Aggregate|WindowAgg)"/.test(top) && x.what !== 'filter')
        items.push(
          failed(
            x.column,
            `${x.what}: "${shown}" aggregates rows (an aggregate or window function); a transform computes each row from that row alone`,
            `write ${x.what} as an expression over one row of ${spec}`,
          ),
        );
    } catch (err) {
      items.push(
        failed(
          x.column,
          `${x.what}: the source refuses "${shown}" over ${relation}: ${(err as Error).message}`,
          `correct ${x.what} (column names are the source's, before renames, and under a column list the listed ones)`,
        ),
      );
    }
  }
  return items;
}

type Parse = (sql: string) => Promise<ParseResult>;
let parser: Promise<Parse> | null = null;

/**
 * Why `expr` does not parse (as the parser words it for the expression alone), or why `sql`,
 * the expression in one of checkExpressions' wrappings, does not hold it as one expression; null
 * when it does.
 */
async function parseProblem(expr: string, sql: string, filter: boolean): Promise<string | null> {
  parser ??= import('libpg-query').then(async (m) => {
    await m.loadModule();
    return m.parse;
  });
  let parsed: ParseResult;
  try {
    const parse = await parser;
    if (!oneExpression(await parse(`SELECT ${expr}`), 'alone'))
      return 'is not one SQL expression (it reaches outside its parentheses)';
    parsed = await parse(sql);
  } catch (err) {
    return `does not parse: ${(err as Error).message}`;
  }
  const one = oneExpression(parsed, filter ? 'filter' : 'from');
  return one ? null : 'is not one SQL expression (it reaches outside its parentheses)';
}

/**
 * Whether `parsed` is one plain SELECT of one target: `alone` with no FROM (the expression by
 * itself), `from` with one FROM item, `filter` with one FROM item and a WHERE.
 */
function oneExpression(parsed: ParseResult, shape: 'alone' | 'from' | 'filter'): boolean {
  const stmts = parsed.stmts ?? [];
  const select =
    stmts.length === 1 ? (stmts[0].stmt as { SelectStmt?: Record<string, unknown> }).SelectStmt : undefined;
  const from = (select?.fromClause as unknown[] | undefined)?.length ?? 0;
  return (
    select !== undefined &&
    (select.op === undefined || select.op === 'SETOP_NONE') &&
    (select.targetList as unknown[] | undefined)?.length === 1 &&
    from === (shape === 'alone' ? 0 : 1) &&
    (shape === 'filter' ? select.whereClause !== undefined : select.whereClause === undefined) &&
    [
      'groupClause',
      'havingClause',
      'sortClause',
      'limitCount',
      'limitOffset',
      'withClause',
      'windowClause',
      'distinctClause',
      'lockingClause',
    ].every((k) => select[k] === undefined)
  );
}
