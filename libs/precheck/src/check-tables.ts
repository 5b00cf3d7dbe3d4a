import type { TaskSpec } from '@pgferry/core';
import { quoteIdent, quoteQualified } from '@pgferry/pg';
import { alterTableReplicaIdentity } from './grant-statements';
import { formatBytes, listNames, plural } from './precheck-format';
import { relKey, type SourceFacts } from './precheck-facts';
import type { PrecheckItem } from './precheck-report';

/** Checks of the selected source tables: selection, keys, sizes, objects a logical migration leaves out. Pure. */

/** Names in the spec that resolveSelection cannot look up must fail before it runs. */
export function checkSpecNames(objects: TaskSpec['objects']): PrecheckItem[] {
  const found: string[] = [];
  const visit = (path: string, name: string | undefined) => {
    if (name !== undefined && name.includes('\0')) found.push(path);
  };
  (objects.include ?? []).forEach((inc, i) => {
    visit(`objects.include[${i}].schema`, inc.schema);
    visit(`objects.include[${i}].renameTo`, inc.renameTo);
    inc.tables?.forEach((t, j) => visit(`objects.include[${i}].tables[${j}]`, t));
    for (const [from, to] of Object.entries(inc.renameTables ?? {})) {
      visit(`objects.include[${i}].renameTables`, from);
      visit(`objects.include[${i}].renameTables`, to);
    }
  });
  (objects.exclude ?? []).forEach((exc, i) => {
    visit(`objects.exclude[${i}].schema`, exc.schema);
    exc.tables?.forEach((t, j) => visit(`objects.exclude[${i}].tables[${j}]`, t));
  });
  return [...new Set(found)].map((path) => ({
    id: `names:${path}`,
    name: 'names',
    level: 'failed',
    object: path,
    message: `${path}: a PostgreSQL name cannot contain a NUL character; correct it in the task spec`,
    fix: `correct ${path} in the task spec`,
  }));
}

export function checkSelection(source: SourceFacts): PrecheckItem[] {
  const { tables, problems } = source.selection;
  if (problems.length > 0)
    return problems.map((p) => ({
      id: `selection:${p.path}`,
      name: 'selection',
      level: 'failed',
      object: p.path,
      message: `${p.path}: ${p.message}`,
      fix: `correct or remove ${p.path} in the task spec`,
    }));
  if (tables.length === 0)
    return [
      {
        id: 'selection',
        name: 'selection',
        level: 'alert',
        message:
          'the task selects no table of the source: no rows would be migrated; check objects.include and objects.exclude in the task spec',
        fix: 'select tables in objects.include, or acknowledge if only the schema is wanted',
      },
    ];
  return [
    {
      id: 'selection',
      name: 'selection',
      level: 'passed',
      message: `${plural(tables.length, 'table')} selected on the source`,
    },
  ];
}

/**
 * A key lets retried loads and changes be matched by row. Without a primary key, a unique NOT
 * NULL key or replica identity full: alert. With incremental, PostgreSQL must also log the old key
 * of updated and deleted rows: replica identity default with a primary key, index, or full;
 * otherwise failed (and PostgreSQL would reject UPDATE and DELETE on the published table).
 */
export function checkKeys(spec: TaskSpec, source: SourceFacts): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  const incremental = spec.migrationTypes.incremental;
  for (const t of source.selection.tables) {
    const name = quoteQualified(t.schema, t.table);
    const base = { id: `keys:${name}`, name: 'primary key', object: name };
    const ri = t.replicaIdentity;
    const hasKey = t.primaryKey.length > 0 || t.uniqueNotNullKey.length > 0 || ri === 'f';
    const logsOldKey = ri === 'f' || ri === 'i' || (ri === 'd' && t.primaryKey.length > 0);
    if (incremental && !logsOldKey) {
      const index = source.tables.get(relKey(t.schema, t.table))?.uniqueIndex ?? null;
      const fix =
        ri === 'n' && t.primaryKey.length > 0
          ? alterTableReplicaIdentity(t.schema, t.table, { default: true })
          : index
            ? alterTableReplicaIdentity(t.schema, t.table, { index })
            : alterTableReplicaIdentity(t.schema, t.table, { full: true });
      const state =
        t.primaryKey.length > 0
          ? 'has replica identity nothing'
          : `has no primary key${index ? ` (only the unique key ${quoteIdent(index)})` : ' or unique NOT NULL key'} and replica identity ${ri === 'n' ? 'nothing' : 'default'}`;
      items.push({
        ...base,
        level: 'failed',
        message: `${name} ${state}: incremental migration would not capture its updates and deletes (PostgreSQL logs no old key for them, and rejects UPDATE and DELETE on a published table without a replica identity); run ${fix.replace(/;$/, '')}${index || t.primaryKey.length > 0 ? '' : ', or add a primary key'}`,
        fix,
      });
    } else if (!hasKey) {
      items.push({
        ...base,
        level: 'alert',
        message: `${name} has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows; add a primary key, or run ALTER TABLE ${name} REPLICA IDENTITY FULL`,
        fix: alterTableReplicaIdentity(t.schema, t.table, { full: true }),
      });
    }
  }
  if (items.length === 0)
    items.push({
      id: 'keys',
      name: 'primary key',
      level: 'passed',
      message: `every selected source table has a key${incremental ? ' and a replica identity' : ''} (${plural(source.selection.tables.length, 'table')})`,
    });
  return items;
}

/** Estimates for progress: pg_class.reltuples and pg_total_relation_size of the selection. */
export function checkSizes(source: SourceFacts): PrecheckItem {
  const tables = source.selection.tables;
  const rows = tables.reduce((n, t) => n + t.estimatedRows, 0);
  const bytes = tables.reduce((n, t) => n + t.bytes, 0);
  return {
    id: 'sizes',
    name: 'sizes',
    level: 'passed',
    message: `${plural(tables.length, 'table')}, about ${plural(rows, 'row')} and ${formatBytes(bytes)} on the source (estimates from the statistics, including indexes and TOAST)`,
  };
}

/**
 * What a logical migration leaves out or treats specially: large objects (not migrated),
 * unlogged tables (their changes are not in the WAL), generated columns (computed by the
 * destination) and sequences owned by the selected tables (set at cutover).
 */
export function checkUnsupported(spec: TaskSpec, source: SourceFacts): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  const n = source.largeObjects;
  items.push(
    n > 0
      ? {
          id: 'large-objects',
          name: 'large objects',
          level: 'alert',
          object: quoteIdent(source.db.database),
          message: `source database ${quoteIdent(source.db.database)} holds ${plural(n, 'large object')} (pg_largeobject): a logical migration does not carry them, and oid columns that point at them would dangle on the destination; copy them separately with pg_dump --blobs, or acknowledge if they are not needed`,
          fix: 'pg_dump --data-only --blobs the large objects from the source and pg_restore them into the destination',
        }
      : {
          id: 'large-objects',
          name: 'large objects',
          level: 'passed',
          message: 'the source database holds no large objects',
        },
  );
  const sequences: string[] = [];
  for (const t of source.selection.tables) {
    const name = quoteQualified(t.schema, t.table);
    const f = source.tables.get(relKey(t.schema, t.table));
    if (!f) continue;
    if (f.unlogged)
      items.push(
        spec.migrationTypes.incremental
          ? {
              id: `unlogged:${name}`,
              name: 'unlogged table',
              level: 'alert',
              object: name,
              message: `${name} is UNLOGGED: its changes are not written to the WAL, so incremental migration cannot capture them (the snapshot still copies its rows); run ALTER TABLE ${name} SET LOGGED if its changes must follow`,
              fix: `ALTER TABLE ${name} SET LOGGED;`,
            }
          : {
              id: `unlogged:${name}`,
              name: 'unlogged table',
              level: 'passed',
              object: name,
              message: `${name} is UNLOGGED: the snapshot copies its rows, and the destination table is unlogged too (emptied by a crash of the destination)`,
            },
      );
    if (f.generatedColumns.length > 0)
      items.push({
        id: `generated:${name}`,
        name: 'generated columns',
        level: 'passed',
        object: name,
        message: `${name} has generated columns ${f.generatedColumns.map(quoteIdent).join(', ')}: they are not copied; the destination computes them from the other columns`,
      });
    sequences.push(...f.ownedSequences.map((s) => quoteQualified(s.schema, s.name)));
  }
  if (sequences.length > 0)
    items.push({
      id: 'sequences',
      name: 'sequences',
      level: 'passed',
      message: `${plural(sequences.length, 'sequence')} owned by the selected tables (${listNames(sequences)}) are set to their source values at cutover; until then the destination's sequences lag behind`,
    });
  return items;
}
