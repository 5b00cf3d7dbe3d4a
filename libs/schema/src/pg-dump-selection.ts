import { SpecError, type NameCase, type TaskSpec } from '@pgferry/core';
import { exactNamePattern, exactRelationPattern } from './pg-pattern';
import type { ColumnList } from './column-shaping';

export type SchemaObjectSelection = TaskSpec['objects'];

/** A relation of the source, as far as selection needs it. */
export interface SourceRelation {
  schema: string;
  name: string;
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, f foreign table, S sequence. */
  kind: string;
  /** The parent of a partition. */
  parent?: { schema: string; name: string };
  /** The table owning a sequence (serial or identity column). */
  ownedBy?: { schema: string; name: string };
}

export interface SelectionCatalog {
  /** Every non-system schema of the source. */
  schemas: string[];
  relations: SourceRelation[];
}

export interface SchemaRename {
  from: string;
  to: string;
}

export interface TableRename {
  /** The table's source schema. */
  schema: string;
  from: string;
  to: string;
  /** pg_class.relkind of the renamed relation (picks ALTER TABLE / VIEW / MATERIALIZED VIEW). */
  kind: string;
}

export interface DumpSelection {
  /** pg_dump options with exact-match patterns: -n/-N schemas, -T relations left out. */
  args: string[];
  /** The source schemas the dump covers. */
  schemas: string[];
  /** No include list: pg_dump's default selection (it then dumps extensions by itself). */
  wholeDatabase: boolean;
  schemaRenames: SchemaRename[];
  tableRenames: TableRename[];
  /** Tables limited to some columns (objects.include[].columns), by their source names. */
  columnLists: ColumnList[];
  /** objects.nameCase: the destination's names are made in the scratch database too. */
  nameCase?: NameCase;
}

/** Schemas pgferry keeps its own objects in on the source (heartbeat); never migrated. */
export const RESERVED_SCHEMAS: readonly string[] = ['pgferry'];

const TABLE_KINDS = new Set(['r', 'p', 'v', 'm', 'f']);
const key = (schema: string, name: string) => JSON.stringify([schema, name]);

/**
 * Turns the spec's object selection into pg_dump options. Semantics:
 *  - no include: every non-system schema but pgferry's own;
 *  - include { schema }: everything in the schema;
 *  - include { schema, tables }: the listed tables (a partitioned table brings its partitions),
 *    their sequences, indexes, constraints, triggers, rules and policies, and the schema's
 *    non-relation objects (types, domains, functions, operators ...) that tables may need; the
 *    schema's other tables, views and materialized views are left out (-T);
 *  - exclude { schema } / { schema, tables }: left out, with the partitions and owned sequences
 *    of excluded tables. Exclusion wins over inclusion.
 * Every name is checked against the source; problems are reported together as a SpecError that
 * names the spec path. Pure.
 */
export function buildDumpSelection(objects: SchemaObjectSelection, catalog: SelectionCatalog): DumpSelection {
  const problems: string[] = [];
  const schemaSet = new Set(catalog.schemas);
  const relations = new Map(catalog.relations.map((r) => [key(r.schema, r.name), r]));
  const children = new Map<string, SourceRelation[]>();
  for (const r of catalog.relations) {
    if (!r.parent) continue;
    const k = key(r.parent.schema, r.parent.name);
    children.set(k, [...(children.get(k) ?? []), r]);
  }
  const withDescendants = (schema: string, name: string): string[] => {
    const out = [key(schema, name)];
    for (const child of children.get(key(schema, name)) ?? [])
      out.push(...withDescendants(child.schema, child.name));
    return out;
  };

  const excludedSchemas = new Set(RESERVED_SCHEMAS.filter((s) => schemaSet.has(s)));
  const excludedRelations = new Set<string>();
  (objects.exclude ?? []).forEach((ex, i) => {
    if (!schemaSet.has(ex.schema)) {
      problems.push(`objects.exclude[${i}].schema: the source has no schema "${ex.schema}"`);
      return;
    }
    if (!ex.tables) {
      excludedSchemas.add(ex.schema);
      return;
    }
    for (const t of ex.tables) {
      if (!relations.has(key(ex.schema, t))) {
        problems.push(`objects.exclude[${i}].tables: the source schema "${ex.schema}" has no table "${t}"`);
      } else withDescendants(ex.schema, t).forEach((k) => excludedRelations.add(k));
    }
  });

  const args: string[] = [];
  const schemaRenames: SchemaRename[] = [];
  const tableRenames: TableRename[] = [];
  const wholeDatabase = objects.include === undefined;
  let schemas: string[];
  if (wholeDatabase) {
    schemas = catalog.schemas.filter((s) => !excludedSchemas.has(s));
  } else {
    const merged = mergeIncludes(objects.include ?? [], schemaSet, problems);
    schemas = [...merged.keys()].filter((s) => !excludedSchemas.has(s));
    const renameTargets = new Map<string, string>();
    for (const [schema, inc] of merged) {
      if (excludedSchemas.has(schema)) continue;
      args.push('-n', exactNamePattern(schema));
      if (inc.renameTo !== undefined && inc.renameTo !== schema) {
        const other = renameTargets.get(inc.renameTo);
        if (
          other !== undefined ||
          (merged.has(inc.renameTo) && merged.get(inc.renameTo)?.renameTo === undefined)
        ) {
          problems.push(
            `objects.include[${inc.index}].renameTo: schema "${schema}" and "${other ?? inc.renameTo}" would both become "${inc.renameTo}"`,
          );
        }
        renameTargets.set(inc.renameTo, schema);
        schemaRenames.push({ from: schema, to: inc.renameTo });
      }
      const kept = new Set<string>();
      for (const t of inc.tables ?? []) {
        if (!relations.has(key(schema, t)) || !TABLE_KINDS.has(relations.get(key(schema, t))!.kind)) {
          problems.push(
            `objects.include[${inc.index}].tables: the source schema "${schema}" has no table "${t}"`,
          );
        } else withDescendants(schema, t).forEach((k) => kept.add(k));
      }
      if (inc.tables) {
        for (const r of catalog.relations) {
          if (r.schema !== schema || kept.has(key(r.schema, r.name))) continue;
          if (TABLE_KINDS.has(r.kind)) excludedRelations.add(key(r.schema, r.name));
        }
      }
      const finalNames = new Map<string, string>();
      for (const [from, to] of Object.entries(inc.renameTables)) {
        if (!relations.has(key(schema, from)) || (inc.tables && !kept.has(key(schema, from)))) {
          problems.push(
            `objects.include[${inc.index}].renameTables: "${from}" is not a selected table of schema "${schema}"`,
          );
          continue;
        }
        if (from !== to)
          tableRenames.push({ schema, from, to, kind: relations.get(key(schema, from))!.kind });
      }
      for (const r of catalog.relations) {
        if (r.schema !== schema || excludedRelations.has(key(r.schema, r.name))) continue;
        const name = inc.renameTables[r.name] ?? r.name;
        const clash = finalNames.get(name);
        if (clash !== undefined) {
          problems.push(
            `objects.include[${inc.index}].renameTables: "${clash}" and "${r.name}" of schema "${schema}" would both be named "${name}"`,
          );
        }
        finalNames.set(name, r.name);
      }
    }
  }
  for (const s of excludedSchemas) args.push('-N', exactNamePattern(s));
  for (const r of catalog.relations) {
    const owner = r.ownedBy && excludedRelations.has(key(r.ownedBy.schema, r.ownedBy.name));
    if (excludedSchemas.has(r.schema)) continue;
    if (excludedRelations.has(key(r.schema, r.name)) || owner) {
      args.push('-T', exactRelationPattern(r.schema, r.name));
    }
  }
  if (problems.length) throw new SpecError(problems);
  const columnLists: ColumnList[] = [];
  for (const inc of objects.include ?? [])
    for (const [table, columns] of Object.entries(inc.columns ?? {}))
      columnLists.push({ schema: inc.schema, table, columns });
  return {
    args,
    schemas,
    wholeDatabase,
    schemaRenames,
    tableRenames,
    columnLists,
    ...(objects.nameCase && objects.nameCase !== 'source' ? { nameCase: objects.nameCase } : {}),
  };
}

interface MergedInclude {
  index: number;
  tables?: string[];
  renameTo?: string;
  renameTables: Record<string, string>;
}

/** One entry per schema: tables are unioned (no list anywhere = whole schema), renames must agree. */
function mergeIncludes(
  include: NonNullable<SchemaObjectSelection['include']>,
  schemaSet: Set<string>,
  problems: string[],
): Map<string, MergedInclude> {
  const merged = new Map<string, MergedInclude>();
  include.forEach((inc, i) => {
    if (!schemaSet.has(inc.schema)) {
      problems.push(`objects.include[${i}].schema: the source has no schema "${inc.schema}"`);
      return;
    }
    const prev = merged.get(inc.schema);
    if (!prev) {
      merged.set(inc.schema, {
        index: i,
        tables: inc.tables ? [...inc.tables] : undefined,
        renameTo: inc.renameTo,
        renameTables: { ...(inc.renameTables ?? {}) },
      });
      return;
    }
    if (inc.renameTo !== undefined && prev.renameTo !== undefined && inc.renameTo !== prev.renameTo) {
      problems.push(
        `objects.include[${i}].renameTo: schema "${inc.schema}" is renamed to "${prev.renameTo}" in objects.include[${prev.index}]`,
      );
    }
    prev.renameTo ??= inc.renameTo;
    prev.tables = prev.tables && inc.tables ? [...new Set([...prev.tables, ...inc.tables])] : undefined;
    for (const [from, to] of Object.entries(inc.renameTables ?? {})) {
      if (prev.renameTables[from] !== undefined && prev.renameTables[from] !== to) {
        problems.push(
          `objects.include[${i}].renameTables: "${from}" is renamed differently in objects.include[${prev.index}]`,
        );
      }
      prev.renameTables[from] = to;
    }
  });
  return merged;
}
