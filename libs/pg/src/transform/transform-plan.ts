import { isAbsolute, resolve } from 'node:path';
import type { MaskKind, NameCase, TransformSpec } from '@pgferry/core';
import { quoteIdent } from '../ident';
import { caseName } from '../selection';

/** A source column as the transform sees it: its name, its type as SQL text, whether generated. */
export interface SourceColumn {
  name: string;
  /** format_type() of the column, e.g. `character varying(40)`. */
  type: string;
  notNull: boolean;
  /** A generated column: not in the records (the destination computes its own). */
  generated: boolean;
}

/** One destination column and the SQL that gives it from a row of the source columns. */
export interface OutputColumn {
  name: string;
  /** SQL over the source columns (quoted names), e.g. `"name"` or `upper(country)`. */
  expr: string;
  /** How it came: a source column as it is, renamed, masked, or an added expression. */
  from: 'column' | 'rename' | 'mask' | 'add';
  /** The source column it comes from (not for add). */
  source?: string;
}

/**
 * The destination's view of one source table, made from its spec entry and the source's
 * columns (planTransform). Serialisable: the controller builds it once and it travels to the
 * applier processes and the replay manifest with the table's target.
 */
export interface TransformPlan {
  /** The source table as the spec names it, `schema.table` (for messages). */
  table: string;
  /** The source's non-generated columns in their order, with their types: the records' shape. */
  source: Array<{ name: string; type: string }>;
  /** The destination's columns in order, each with its SQL over the source columns. */
  output: OutputColumn[];
  /** A SQL boolean over the source columns, or null: rows for which it is not true are left out. */
  filter: string | null;
  /** Absolute path of the row module, or null. */
  module: string | null;
  /** The source's key columns. */
  sourceKey: string[];
  /** The destination's key: the source key under its destination names. */
  key: string[];
}

/** A transform that does not fit its table: what is wrong and how to fix it. */
export interface TransformProblem {
  column?: string;
  message: string;
}

/** The SQL of a masked column's value from `column` (quoted): text, NULL stays NULL. */
export function maskSql(kind: MaskKind, column: string): string {
  switch (kind) {
    case 'sha256':
      return `encode(sha256(convert_to(${column}::text, 'UTF8')), 'hex')`;
    case 'md5':
      return `md5(${column}::text)`;
    case 'redact':
      return `CASE WHEN ${column} IS NULL THEN NULL ELSE 'REDACTED' END`;
    case 'null':
      return 'NULL::text';
  }
}

/**
 * The plan of `spec` over the source's `columns` (in order; under a column list, the listed
 * ones, and `unlisted` the table's others) with key `key`, and what does not fit: a column the table does not have, a key column dropped or masked (a key identifies the
 * row on the destination: rename it instead, which keeps it the key under the new name), two
 * destination columns of one name. Pure; expressions are checked by the precheck against the
 * server (checkTransforms). With problems the plan must not be used.
 */
export function planTransform(
  spec: TransformSpec,
  columns: readonly SourceColumn[],
  key: readonly string[],
  unlisted: ReadonlySet<string> = new Set(),
): { plan: TransformPlan; problems: TransformProblem[] } {
  const problems: TransformProblem[] = [];
  const byName = new Map(columns.map((c) => [c.name, c]));
  const known = (column: string, how: string): boolean => {
    const c = byName.get(column);
    if (!c && unlisted.has(column))
      problems.push({
        column,
        message: `${how} names column "${column}", which the column list of ${spec.table} leaves out (objects.include[].columns: ${columns.map((x) => x.name).join(', ')}): add it to the list, or leave it out of the transform`,
      });
    else if (!c)
      problems.push({
        column,
        message: `${how} names column "${column}", which ${spec.table} does not have (it has ${columns.map((x) => x.name).join(', ')}): correct the name`,
      });
    else if (c.generated)
      problems.push({
        column,
        message: `${how} names generated column "${column}": the destination computes its own; leave it out of the transform`,
      });
    return c !== undefined && !c.generated;
  };
  const drop = new Set((spec.drop ?? []).filter((c) => known(c, 'drop')));
  const rename = new Map(Object.entries(spec.rename ?? {}).filter(([c]) => known(c, 'rename')));
  const mask = new Map(Object.entries(spec.mask ?? {}).filter(([c]) => known(c, 'mask')));
  for (const k of key) {
    if (drop.has(k))
      problems.push({
        column: k,
        message: `drop names key column "${k}" of ${spec.table}: the key identifies each row on the destination; keep it (rename it if it needs another name)`,
      });
    if (mask.has(k))
      problems.push({
        column: k,
        message: `mask names key column "${k}" of ${spec.table}: the key identifies each row on the destination and must arrive as it is; mask another column, or keep the key unmasked`,
      });
  }
  const output: OutputColumn[] = [];
  for (const c of columns) {
    if (c.generated || drop.has(c.name)) continue;
    const q = quoteIdent(c.name);
    const m = mask.get(c.name);
    const name = rename.get(c.name) ?? c.name;
    if (m) output.push({ name, expr: maskSql(m, q), from: 'mask', source: c.name });
    else output.push({ name, expr: q, from: rename.has(c.name) ? 'rename' : 'column', source: c.name });
  }
  for (const [name, expr] of Object.entries(spec.add ?? {}))
    output.push({ name, expr: `(${expr})`, from: 'add' });
  const seen = new Set<string>();
  for (const o of output) {
    if (seen.has(o.name))
      problems.push({
        column: o.name,
        message: `${spec.table} would have two destination columns named "${o.name}": give the renamed or added column another name`,
      });
    seen.add(o.name);
  }
  const module = spec.module ? (isAbsolute(spec.module) ? spec.module : resolve(spec.module)) : null;
  return {
    plan: {
      table: spec.table,
      source: columns.filter((c) => !c.generated).map((c) => ({ name: c.name, type: c.type })),
      output,
      filter: spec.filter ? `(${spec.filter})` : null,
      module,
      sourceKey: [...key],
      key: key.map((k) => rename.get(k) ?? k),
    },
    problems,
  };
}

/**
 * `plan` with its destination names (output and key) in objects.nameCase: the transform names
 * the destination's columns, then the case applies to them as to every other created name.
 * The expressions keep the source's names (they read the source's row). Pure.
 */
export function casePlan(plan: TransformPlan, nameCase: NameCase | undefined): TransformPlan {
  if (!nameCase || nameCase === 'source') return plan;
  return {
    ...plan,
    output: plan.output.map((o) => ({ ...o, name: caseName(o.name, nameCase) })),
    key: plan.key.map((k) => caseName(k, nameCase)),
  };
}

/** Two destination columns of `plan` that objects.nameCase makes one name: a problem each. */
export function caseProblems(plan: TransformPlan, nameCase: NameCase | undefined): TransformProblem[] {
  if (!nameCase || nameCase === 'source') return [];
  const by = new Map<string, string[]>();
  for (const o of plan.output)
    by.set(caseName(o.name, nameCase), [...(by.get(caseName(o.name, nameCase)) ?? []), o.name]);
  return [...by]
    .filter(([, from]) => from.length > 1)
    .map(([to, from]) => ({
      column: to,
      message: `objects.nameCase ${nameCase} makes the destination columns ${from.map((f) => `"${f}"`).join(' and ')} of ${plan.table} one name, "${to}": rename or drop one of them in the transform, or set objects.nameCase: source`,
    }));
}

/**
 * `SELECT <output expressions> FROM <from> [WHERE <filter>]`: the destination's view of the
 * rows in `from` (a quoted relation whose columns are the source's). Verify reads the source
 * through it; the applier writes staged rows through it.
 */
export function viewSql(plan: TransformPlan, from: string, extraWhere?: string): string {
  const list = plan.output.map((o) => `${o.expr} AS ${quoteIdent(o.name)}`).join(', ');
  const where = [plan.filter ? `COALESCE(${plan.filter}, false)` : null, extraWhere ?? null].filter(Boolean);
  return `SELECT ${list} FROM ${from}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`;
}

/** The column definitions of a staging table holding source rows of `columns` (default: all). */
export function sourceColumnsSql(plan: TransformPlan, columns?: readonly string[]): string {
  const types = new Map(plan.source.map((c) => [c.name, c.type]));
  return (columns ?? plan.source.map((c) => c.name))
    .map((c) => `${quoteIdent(c)} ${types.get(c)}`)
    .join(', ');
}
