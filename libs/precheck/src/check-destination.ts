import type { TaskSpec } from '@pgferry/core';
import { quoteIdent, quoteQualified } from '@pgferry/pg';
import type { SelectedTable } from '@pgferry/pg';
import { listNames, plural } from './precheck-format';
import { CONTROL_SCHEMA, relKey, type DestinationFacts } from './precheck-facts';
import type { PrecheckItem } from './precheck-report';

/** Checks of the target names and of what already exists on the destination. Pure. */

const KIND: Record<string, string> = {
  r: 'table',
  p: 'partitioned table',
  v: 'view',
  m: 'materialized view',
  i: 'index',
  I: 'partitioned index',
  S: 'sequence',
  f: 'foreign table',
  c: 'composite type',
  t: 'TOAST table',
};

/** Size of a name as the destination stores it (UTF-8 bytes; the checks assume a UTF8 or ASCII-compatible destination). */
function nameBytes(name: string): number {
  return Buffer.byteLength(name, 'utf8');
}

const renameHint = (t: SelectedTable, part: 'schema' | 'table') =>
  part === 'schema'
    ? t.targetSchema !== t.schema
      ? 'set by objects.include[].renameTo'
      : 'the source name; map it with objects.include[].renameTo'
    : t.targetTable !== t.table
      ? 'set by objects.include[].renameTables'
      : 'the source name; map it with objects.include[].renameTables';

/**
 * Target schema and table names the destination cannot hold: longer than its
 * max_identifier_length (PostgreSQL would silently truncate them, and two names could then
 * collide), a schema name with the reserved prefix pg_, or pgferry's own control schema.
 */
export function checkNames(tables: SelectedTable[], destination: DestinationFacts): PrecheckItem[] {
  const max = destination.db.maxIdentifierLength;
  const items: PrecheckItem[] = [];
  const seenSchemas = new Set<string>();
  for (const t of tables) {
    const source = quoteQualified(t.schema, t.table);
    if (!seenSchemas.has(t.targetSchema)) {
      seenSchemas.add(t.targetSchema);
      const schema = quoteIdent(t.targetSchema);
      const problem =
        nameBytes(t.targetSchema) > max
          ? `is ${nameBytes(t.targetSchema)} bytes long; the destination holds names of at most ${max} bytes and would truncate it`
          : t.targetSchema.startsWith('pg_')
            ? 'starts with pg_, which PostgreSQL reserves for system schemas'
            : t.targetSchema === CONTROL_SCHEMA
              ? 'is the schema pgferry keeps its own state in'
              : null;
      if (problem)
        items.push({
          id: `names:${schema}`,
          name: 'names',
          level: 'failed',
          object: schema,
          message: `target schema ${schema} (of source table ${source}, ${renameHint(t, 'schema')}) ${problem}; choose another name with objects.include[].renameTo`,
          fix: 'set objects.include[].renameTo to a valid name in the task spec',
        });
    }
    if (nameBytes(t.targetTable) > max) {
      const target = quoteQualified(t.targetSchema, t.targetTable);
      items.push({
        id: `names:${target}`,
        name: 'names',
        level: 'failed',
        object: target,
        message: `target table name ${quoteIdent(t.targetTable)} of source table ${source} (${renameHint(t, 'table')}) is ${nameBytes(t.targetTable)} bytes long; the destination holds names of at most ${max} bytes and would truncate it; choose a shorter name with objects.include[].renameTables`,
        fix: 'set a shorter name in objects.include[].renameTables in the task spec',
      });
    }
  }
  if (items.length === 0)
    items.push({
      id: 'names',
      name: 'names',
      level: 'passed',
      message: `every target name fits the destination's limit of ${max} bytes (${plural(tables.length, 'table name')}, ${plural(seenSchemas.size, 'schema name')})`,
    });
  return items;
}

/**
 * Target tables already on the destination. With the schema phase, an existing relation is a
 * conflict: failed under conflictMode report-error, an alert under ignore (rows are upserted into
 * it by key) unless it is not a table. When the destination records this task (an earlier run
 * created them), existing tables are expected. Without the schema phase the target tables must
 * exist. Existing target schemas are reused (the schema phase skips CREATE SCHEMA for them).
 */
export function checkConflicts(
  spec: TaskSpec,
  tables: SelectedTable[],
  destination: DestinationFacts,
): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  const mode = spec.options.conflictMode;
  const resumed = destination.controlTask !== null && destination.controlTask !== undefined;
  const existing: string[] = [];
  for (const t of tables) {
    const target = quoteQualified(t.targetSchema, t.targetTable);
    const source = quoteQualified(t.schema, t.table);
    const base = { id: `conflicts:${target}`, name: 'destination conflicts', object: target };
    const rel = destination.relations.get(relKey(t.targetSchema, t.targetTable));
    const isTable = rel !== undefined && (rel.kind === 'r' || rel.kind === 'p');
    if (!spec.migrationTypes.schema) {
      if (!isTable)
        items.push({
          ...base,
          level: 'failed',
          message: `target table ${target} (of source table ${source}) ${rel ? `is a ${KIND[rel.kind] ?? rel.kind}, not a table,` : 'does not exist on the destination'} and migrationTypes.schema is false, so nothing creates it; create the table on the destination, or set migrationTypes.schema: true`,
          fix: `create table ${target} on the destination, or set migrationTypes.schema: true in the task spec`,
        });
      continue;
    }
    if (!rel) continue;
    existing.push(target);
    if (!isTable) {
      items.push({
        ...base,
        level: 'failed',
        message: `destination already has a ${KIND[rel.kind] ?? rel.kind} named ${target}, the target of source table ${source}, and a table cannot take its name; drop or rename it on the destination, or map the source table to another name (objects.include[].renameTables)`,
        fix: 'drop or rename the destination object, or set objects.include[].renameTables in the task spec',
      });
    } else if (resumed) {
      continue;
    } else if (mode === 'report-error') {
      items.push({
        ...base,
        level: 'failed',
        message: `destination already has table ${target}, the target of source table ${source}; drop or rename it on the destination, map the source table to another name (objects.include[].renameTables or renameTo), or set options.conflictMode: ignore to write the rows into it by key`,
        fix: 'drop or rename the destination table, rename the target in the task spec, or set options.conflictMode: ignore',
      });
    } else {
      items.push({
        ...base,
        level: 'alert',
        message: `destination already has table ${target}, the target of source table ${source}; with options.conflictMode: ignore its definition and rows are kept, source rows are upserted into it by key (a row with the same key is overwritten) and rows the source lacks stay, so its columns must match the source table's`,
        fix: 'acknowledge to write into the existing table; empty or drop it first if the destination must equal the source',
      });
    }
  }
  if (items.length === 0)
    items.push({
      id: 'conflicts',
      name: 'destination conflicts',
      level: 'passed',
      message: !spec.migrationTypes.schema
        ? `every target table exists on the destination (${plural(tables.length, 'table')}; migrationTypes.schema is false)`
        : resumed && existing.length > 0
          ? `${existing.length} of ${tables.length} target tables exist on the destination from an earlier run of task ${spec.name}; the task resumes`
          : `none of the ${plural(tables.length, 'target table')} exists on the destination`,
    });
  const targetSchemas = [...new Set(tables.map((t) => t.targetSchema))];
  const reused = targetSchemas.filter((s) => destination.schemas.has(s)).map(quoteIdent);
  const created = targetSchemas.filter((s) => !destination.schemas.has(s)).map(quoteIdent);
  if (spec.migrationTypes.schema && targetSchemas.length > 0)
    items.push({
      id: 'conflicts:schemas',
      name: 'destination conflicts',
      level: 'passed',
      message: [
        reused.length > 0 &&
          `target schema${reused.length > 1 ? 's' : ''} ${listNames(reused, 10)} already exist${reused.length > 1 ? '' : 's'} on the destination and ${reused.length > 1 ? 'are' : 'is'} reused`,
        created.length > 0 && `${listNames(created, 10)} ${created.length > 1 ? 'are' : 'is'} created`,
      ]
        .filter(Boolean)
        .join('; '),
    });
  return items;
}
