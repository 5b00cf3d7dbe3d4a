import type { Client } from 'pg';
import type { NameCase, Operation, TaskSpec } from '@pgferry/core';
import { listTables, type TableInfo } from './catalog';
import { quoteQualified } from './ident';

/** One selected source table and where it goes on the destination. */
export interface SelectedTable extends TableInfo {
  targetSchema: string;
  targetTable: string;
  /** Row filter (objects.include[].where), one SQL expression validated by the precheck. */
  where?: string;
  /** Column list (objects.include[].columns): only these are read, streamed and created. */
  columns?: string[];
  /** Operations carried (objects.include[].operations); omitted: all. */
  operations?: Operation[];
}

/** A destination name in the task's objects.nameCase (omitted: as on the source). */
export function caseName(name: string, nameCase: NameCase | undefined): string {
  if (nameCase === 'lower') return name.toLowerCase();
  if (nameCase === 'upper') return name.toUpperCase();
  return name;
}

export interface SelectionProblem {
  /** The spec path, e.g. objects.include[0].tables[1]. */
  path: string;
  message: string;
}

export interface Selection {
  tables: SelectedTable[];
  /** Named in the spec but absent on the source: the task must not start. */
  problems: SelectionProblem[];
}

/**
 * Resolves `objects` of the task spec against the source catalog: omitted include means every
 * user table; a schema entry without `tables` means every table of the schema; excludes win.
 * Names are exact (case, spaces and quotes as written; no patterns). Renames come from
 * `renameTo` (schema) and `renameTables` (table). The same selection drives schema, data,
 * publication and verify, so they can never disagree.
 */
export async function resolveSelection(client: Client, objects: TaskSpec['objects']): Promise<Selection> {
  const all = await listTables(client, 'listing source tables');
  return selectTables(all, objects);
}

export function selectTables(all: TableInfo[], objects: TaskSpec['objects']): Selection {
  const problems: SelectionProblem[] = [];
  const bySchema = new Map<string, TableInfo[]>();
  for (const t of all) bySchema.set(t.schema, [...(bySchema.get(t.schema) ?? []), t]);
  const chosen = new Map<string, SelectedTable>();
  const key = (schema: string, table: string) => `${schema}\u0000${table}`;
  const includes =
    objects.include ??
    [...bySchema.keys()].map((schema) => ({
      schema,
      tables: undefined,
      renameTo: undefined,
      renameTables: undefined,
      where: undefined,
      columns: undefined,
      operations: undefined,
    }));
  includes.forEach((inc, i) => {
    const tables = bySchema.get(inc.schema);
    if (!tables) {
      problems.push({
        path: `objects.include[${i}].schema`,
        message: `schema "${inc.schema}" does not exist on the source (names are case-sensitive)`,
      });
      return;
    }
    const wanted = inc.tables ?? tables.map((t) => t.table);
    wanted.forEach((name, j) => {
      const t = tables.find((x) => x.table === name);
      if (!t) {
        problems.push({
          path: `objects.include[${i}].tables[${j}]`,
          message: `table ${quoteQualified(inc.schema, name)} does not exist on the source (names are case-sensitive)`,
        });
        return;
      }
      chosen.set(key(t.schema, t.table), {
        ...t,
        targetSchema: inc.renameTo ?? caseName(t.schema, objects.nameCase),
        targetTable: inc.renameTables?.[t.table] ?? caseName(t.table, objects.nameCase),
        ...(inc.where?.[t.table] !== undefined ? { where: inc.where[t.table] } : {}),
        ...(inc.columns?.[t.table] !== undefined ? { columns: inc.columns[t.table] } : {}),
        ...(inc.operations !== undefined ? { operations: inc.operations } : {}),
      });
    });
    for (const field of ['where', 'columns'] as const) {
      for (const named of Object.keys(inc[field] ?? {})) {
        if (!wanted.includes(named))
          problems.push({
            path: `objects.include[${i}].${field}`,
            message: `names ${quoteQualified(inc.schema, named)}, which is not selected; list it in objects.include[${i}].tables or remove it from ${field}`,
          });
      }
    }
    for (const renamed of Object.keys(inc.renameTables ?? {})) {
      if (!wanted.includes(renamed))
        problems.push({
          path: `objects.include[${i}].renameTables`,
          message: `renames ${quoteQualified(inc.schema, renamed)}, which is not selected`,
        });
    }
  });
  for (const exc of objects.exclude ?? []) {
    for (const t of bySchema.get(exc.schema) ?? []) {
      if (!exc.tables || exc.tables.includes(t.table)) chosen.delete(key(t.schema, t.table));
    }
  }
  const targets = new Map<string, string>();
  for (const t of chosen.values()) {
    const k = key(t.targetSchema, t.targetTable);
    const other = targets.get(k);
    if (other)
      problems.push({
        path: 'objects.include',
        message: `${other} and ${quoteQualified(t.schema, t.table)} would both become ${quoteQualified(t.targetSchema, t.targetTable)}`,
      });
    targets.set(k, quoteQualified(t.schema, t.table));
  }
  return { tables: [...chosen.values()], problems };
}

/**
 * Which tables created on the source after a task started belong to it, so the stream carries
 * them from their CREATE on: tables of a schema the task takes whole (an include entry without
 * `tables`; every user schema, new ones too, when there is no include at all) that the task
 * renames nothing in (pgferry does not rewrite the statement that created them), unless an
 * exclude names them or their schema. A list of tables is a choice of those tables, and a new
 * one is not in it.
 */
export interface NewTableRule {
  /** The schemas taken whole; null: every user schema (no include), but `excludedSchemas`. */
  schemas: string[] | null;
  /** Schemas an exclude takes whole (with `schemas` null; otherwise they are left out of it). */
  excludedSchemas: string[];
  /** Tables an exclude names. */
  excluded: Array<{ schema: string; table: string }>;
}

/** Schemas that hold no user tables: PostgreSQL's own and pgferry's. */
export function isSystemSchema(schema: string): boolean {
  return schema.startsWith('pg_') || schema === 'information_schema' || schema === 'pgferry';
}

export function newTableRule(objects: TaskSpec['objects']): NewTableRule {
  const renames = (inc: NonNullable<TaskSpec['objects']['include']>[number]) =>
    (inc.renameTo !== undefined && inc.renameTo !== inc.schema) || inc.renameTables !== undefined;
  const excludedSchemas = (objects.exclude ?? []).filter((e) => !e.tables).map((e) => e.schema);
  const excluded: NewTableRule['excluded'] = [];
  for (const exc of objects.exclude ?? [])
    for (const table of exc.tables ?? []) excluded.push({ schema: exc.schema, table });
  if (!objects.include) return { schemas: null, excludedSchemas: excludedSchemas.sort(), excluded };
  const schemas = new Set(objects.include.filter((inc) => !inc.tables && !renames(inc)).map((i) => i.schema));
  // A schema with any rename is left out even when another entry takes it whole.
  for (const inc of objects.include) if (renames(inc)) schemas.delete(inc.schema);
  for (const schema of excludedSchemas) schemas.delete(schema);
  return { schemas: [...schemas].sort(), excludedSchemas: [], excluded };
}

/** Does `rule` take table `schema`.`table`, created after the task started? */
export function takesNewTable(rule: NewTableRule, schema: string, table: string): boolean {
  const inScope =
    rule.schemas === null
      ? !isSystemSchema(schema) && !rule.excludedSchemas.includes(schema)
      : rule.schemas.includes(schema);
  return inScope && !rule.excluded.some((e) => e.schema === schema && e.table === table);
}

/** The key a table is carried by: primary key, else a unique NOT NULL key, else none. */
export function tableKey(t: Pick<SelectedTable, 'primaryKey' | 'uniqueNotNullKey'>): string[] {
  return t.primaryKey.length ? t.primaryKey : t.uniqueNotNullKey;
}
