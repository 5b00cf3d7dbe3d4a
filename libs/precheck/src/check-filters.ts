import type { Client } from 'pg';
import type { Node, ParseResult } from 'libpg-query';
import type { TaskSpec } from '@pgferry/core';
import {
  caseName,
  classifyPgError,
  quoteIdent,
  quoteQualified,
  tableKey,
  type SelectedTable,
} from '@pgferry/pg';
import { alterTableReplicaIdentity } from './grant-statements';
import type { SourceFacts } from './precheck-facts';
import type { PrecheckItem } from './precheck-report';

/** Publication row filters and column lists came with PostgreSQL 15. */
const FILTERS_SINCE = 150000;

type Parse = (sql: string) => Promise<ParseResult>;
let parser: Promise<Parse> | null = null;
function loadParser(): Promise<Parse> {
  parser ??= import('libpg-query').then(async (m) => {
    await m.loadModule();
    return m.parse;
  });
  return parser;
}

/**
 * What a row filter is, as far as the checks need: the columns it reads and the functions it
 * calls (by name, unqualified), or why it is refused.
 */
type ParsedFilter = { columns: string[]; functions: string[] } | { refusal: string };

/**
 * Parses `where` as one SQL expression (it is pasted into the snapshot's SELECT and the
 * publication's WHERE): a second statement, a set operation or a subquery is refused, the
 * last two because a publication row filter may not hold them.
 */
export async function parseFilter(where: string): Promise<ParsedFilter> {
  let parsed: ParseResult;
  try {
    parsed = await (await loadParser())(`SELECT WHERE (${where})`);
  } catch (err) {
    return { refusal: `it does not parse as one SQL expression (${(err as Error).message})` };
  }
  const stmt = parsed.stmts?.length === 1 ? parsed.stmts[0].stmt : undefined;
  const select = stmt && 'SelectStmt' in stmt ? stmt.SelectStmt : undefined;
  const extra =
    select && Object.keys(select).filter((k) => !['whereClause', 'limitOption', 'op'].includes(k));
  if (!select || select.op !== 'SETOP_NONE' || !select.whereClause || extra?.length)
    return {
      refusal: 'it is not one SQL expression (it closes the parenthesis around it or adds a statement)',
    };
  const columns = new Set<string>();
  const functions = new Set<string>();
  let sublink = false;
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!node || typeof node !== 'object') return;
    const n = node as Node & Record<string, unknown>;
    if ('SubLink' in n) sublink = true;
    if ('ColumnRef' in n) {
      const fields = (n.ColumnRef as { fields?: Array<{ String?: { sval: string } }> }).fields ?? [];
      const last = fields[fields.length - 1]?.String?.sval;
      if (last !== undefined) columns.add(last);
    }
    if ('FuncCall' in n) {
      const parts = (n.FuncCall as { funcname?: Array<{ String?: { sval: string } }> }).funcname ?? [];
      const last = parts[parts.length - 1]?.String?.sval;
      if (last !== undefined) functions.add(last);
    }
    Object.values(n).forEach(walk);
  };
  walk(select.whereClause);
  if (sublink) return { refusal: 'it holds a subquery, which a publication row filter cannot hold' };
  return { columns: [...columns], functions: [...functions] };
}

interface TableColumns {
  all: string[];
  /** The columns PostgreSQL logs the old values of for UPDATE and DELETE (replica identity). */
  identity: string[];
}

async function readColumns(client: Client, t: SelectedTable): Promise<TableColumns> {
  const name = quoteQualified(t.schema, t.table);
  const { rows } = await client.query<{ all: string[]; ri_index: string[] | null }>(
    `SELECT coalesce((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
                       WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped), '{}') AS all,
            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = $1::regclass AND i.indisreplident) AS ri_index`,
    [name],
  );
  const all = rows[0].all;
  const ri = t.replicaIdentity;
  const identity = ri === 'f' ? all : ri === 'i' ? (rows[0].ri_index ?? []) : ri === 'd' ? t.primaryKey : [];
  return { all, identity };
}

/**
 * The server's own judgement of a filter: EXPLAIN (plans, runs nothing) in a read-only
 * transaction; then the functions it calls, which in a publication row filter must be built-in
 * (below FirstNormalObjectId, 16384) and immutable.
 */
async function explainFilter(
  client: Client,
  t: SelectedTable,
  where: string,
  functions: readonly string[],
): Promise<string | null> {
  try {
    await client.query('BEGIN READ ONLY');
    await client.query(`EXPLAIN SELECT FROM ONLY ${quoteQualified(t.schema, t.table)} WHERE (${where})`);
    const { rows } = await client.query<{ name: string }>(
      `SELECT f AS name FROM unnest($1::text[]) f
        WHERE NOT EXISTS (SELECT FROM pg_proc p WHERE p.proname = f AND p.oid < 16384 AND p.provolatile = 'i')`,
      [functions],
    );
    if (rows.length)
      return `it calls ${rows.map((r) => quoteIdent(r.name)).join(', ')}, and a publication row filter may call only built-in immutable functions (not user-defined, stable or volatile ones such as now())`;
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

/**
 * Row filters, column lists and objects.nameCase (docs/filters.md). Read-only on the source.
 * Per filtered or column-limited table: a source that can publish them (15+, with incremental),
 * a filter the parser takes as one expression and the server plans over the table, listed
 * columns that exist and hold the key, and (with incremental, whose publication publishes
 * UPDATE always) a replica identity that covers the filter's columns and is inside the column
 * list, PostgreSQL's own rule, which otherwise makes it refuse UPDATE and DELETE on the table.
 * Then names that objects.nameCase would make one.
 */
export async function checkFilters(
  spec: TaskSpec,
  client: Client,
  source: SourceFacts,
): Promise<PrecheckItem[]> {
  const items: PrecheckItem[] = [];
  const incremental = spec.migrationTypes.incremental;
  const shaped = source.selection.tables.filter((t) => t.where !== undefined || t.columns !== undefined);
  const columnsOf = new Map<SelectedTable, TableColumns>();
  const read = async (t: SelectedTable) => {
    if (!columnsOf.has(t)) {
      try {
        columnsOf.set(t, await readColumns(client, t));
      } catch (err) {
        throw classifyPgError(
          err,
          `reading the columns of ${quoteQualified(t.schema, t.table)} for the precheck`,
        );
      }
    }
    return columnsOf.get(t)!;
  };
  for (const t of shaped) {
    const name = quoteQualified(t.schema, t.table);
    const fail = (id: string, message: string, fix: string, what = 'row filter') =>
      items.push({ id: `${id}:${name}`, name: what, level: 'failed', object: name, message, fix });
    const problems = items.length;
    const cols = await read(t);
    if (incremental && source.info.versionNum < FILTERS_SINCE)
      fail(
        'filters-version',
        `${name} has a row filter or column list (objects.include[].where / columns), which incremental migration carries as publication row filters and column lists; those need PostgreSQL 15 or later on the source, and it runs ${source.info.version}: upgrade the source, or remove the filter and column list of ${name}`,
        `upgrade the source to PostgreSQL 15 or later, or remove objects.include[].where / columns for ${name}`,
      );
    let filterColumns: string[] = [];
    if (t.where !== undefined) {
      const parsed = await parseFilter(t.where);
      const refusal =
        'refusal' in parsed ? parsed.refusal : await explainFilter(client, t, t.where, parsed.functions);
      if ('columns' in parsed) filterColumns = parsed.columns.filter((c) => cols.all.includes(c));
      if (refusal)
        fail(
          'filter',
          `the row filter of ${name} (objects.include[].where: ${JSON.stringify(t.where)}) is refused: ${refusal}; correct it to one SQL expression over the columns of ${name}`,
          `correct objects.include[].where for ${name}`,
        );
    }
    if (t.columns) {
      const unknown = t.columns.filter((c) => !cols.all.includes(c));
      if (unknown.length)
        fail(
          'columns',
          `the column list of ${name} (objects.include[].columns) names ${unknown.map(quoteIdent).join(', ')}, which ${name} does not have (it has ${cols.all.map(quoteIdent).join(', ')}); correct the list`,
          `correct objects.include[].columns for ${name}`,
          'column list',
        );
      const missingKey = tableKey(t).filter((k) => !t.columns!.includes(k));
      if (missingKey.length)
        fail(
          'columns-key',
          `the column list of ${name} (objects.include[].columns) leaves out its key column(s) ${missingKey.map(quoteIdent).join(', ')}: the destination applies changes by key; add them to the list`,
          `add ${missingKey.join(', ')} to objects.include[].columns for ${name}`,
          'column list',
        );
    }
    if (incremental && items.length === problems) identityItems(t, cols, filterColumns, fail);
    if (items.length === problems)
      items.push({
        id: `filter:${name}`,
        name: 'row filter',
        level: 'passed',
        object: name,
        message: `${name} is migrated ${[t.where !== undefined ? `through the row filter ${JSON.stringify(t.where)}` : '', t.columns ? `with the columns ${t.columns.map(quoteIdent).join(', ')}` : ''].filter(Boolean).join(' and ')}`,
      });
  }
  const nameCase = spec.objects.nameCase;
  if (nameCase && nameCase !== 'source') {
    for (const t of source.selection.tables) await read(t);
    items.push(...caseCollisions(source.selection.tables, columnsOf, nameCase));
    // Captured DDL is replayed as the source ran it, naming the source's schemas and tables.
    const withDdl = source.selection.tables.filter((t) => !t.operations || t.operations.includes('ddl'));
    if (incremental && source.info.isSuperuser && withDdl.length)
      items.push({
        id: 'name-case-ddl',
        name: 'name case',
        level: 'alert',
        message: `objects.nameCase ${nameCase} gives the destination other names than the source's, and schema changes on ${withDdl.length === 1 ? quoteQualified(withDdl[0].schema, withDdl[0].table) : `${withDdl.length} selected tables`} are replayed on the destination as the source ran them, with the source's names: such a change stops the task; leave ddl out of objects.include[].operations (the change is then counted, not applied, and made on the destination by hand), or acknowledge if the schema does not change during the migration`,
        fix: 'leave ddl out of objects.include[].operations, or acknowledge',
      });
  }
  return items;
}

/** PostgreSQL's rule for published row filters and column lists when UPDATE and DELETE are published. */
function identityItems(
  t: SelectedTable,
  cols: TableColumns,
  filterColumns: string[],
  fail: (id: string, message: string, fix: string, what?: string) => void,
): void {
  const name = quoteQualified(t.schema, t.table);
  const outside = filterColumns.filter((c) => !cols.identity.includes(c));
  const identity = cols.identity.length
    ? `replica identity ${t.replicaIdentity === 'f' ? 'FULL' : `(${cols.identity.map(quoteIdent).join(', ')})`}`
    : 'no replica identity';
  if (outside.length)
    fail(
      'filter-identity',
      `the row filter of ${name} reads ${outside.map(quoteIdent).join(', ')}, outside its ${identity}: PostgreSQL logs only the replica identity's old values, so it would refuse UPDATE and DELETE on ${name} once it is published with this filter; ${t.columns ? 'give it a unique index over its key and those columns and use REPLICA IDENTITY USING INDEX (FULL is refused with a column list)' : `run ${alterTableReplicaIdentity(t.schema, t.table, { full: true }).replace(/;$/, '')}, or give it a unique index over its key and those columns and use REPLICA IDENTITY USING INDEX`}`,
      alterTableReplicaIdentity(t.schema, t.table, { full: true }),
    );
  if (!t.columns) return;
  // PostgreSQL 15 and 16 refuse UPDATE and DELETE on a REPLICA IDENTITY FULL table published
  // with any column list, even one of every column ("does not cover the replica identity").
  if (t.replicaIdentity === 'f')
    return fail(
      'columns-identity',
      `${name} has REPLICA IDENTITY FULL and a column list (objects.include[].columns): PostgreSQL refuses UPDATE and DELETE on a REPLICA IDENTITY FULL table published with a column list ("Column list used by the publication does not cover the replica identity"); give ${name} REPLICA IDENTITY DEFAULT (its primary key) or USING INDEX over listed columns, or remove its column list`,
      alterTableReplicaIdentity(t.schema, t.table, { default: true }),
      'column list',
    );
  const left = cols.identity.filter((c) => !t.columns!.includes(c));
  if (left.length)
    fail(
      'columns-identity',
      `the column list of ${name} leaves out ${left.map(quoteIdent).join(', ')} of its ${identity}: PostgreSQL would refuse UPDATE and DELETE on ${name} once it is published with this column list; add them to objects.include[].columns`,
      `add ${left.join(', ')} to objects.include[].columns for ${name}`,
      'column list',
    );
}

/** Two source names that objects.nameCase makes one name on the destination: each a failed item. */
function caseCollisions(
  tables: readonly SelectedTable[],
  columnsOf: ReadonlyMap<SelectedTable, TableColumns>,
  nameCase: 'lower' | 'upper',
): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  const collide = (what: string, where: string, names: Iterable<string>) => {
    const by = new Map<string, Set<string>>();
    for (const n of names) by.set(caseName(n, nameCase), (by.get(caseName(n, nameCase)) ?? new Set()).add(n));
    for (const [to, from] of by)
      if (from.size > 1)
        items.push({
          id: `name-case:${where}${quoteIdent(to)}`,
          name: 'name case',
          level: 'failed',
          object: `${where}${quoteIdent(to)}`,
          message: `objects.nameCase ${nameCase} makes the ${what} ${[...from].map(quoteIdent).join(' and ')}${where ? ` of ${where.replace(/\.$/, '')}` : ''} one name, ${quoteIdent(to)}, on the destination; rename one of them on the source${what === 'schemas' ? ', map one with objects.include[].renameTo' : ''}, or set objects.nameCase: source`,
          fix: `set objects.nameCase: source, or rename one of ${[...from].map(quoteIdent).join(', ')}`,
        });
  };
  // Names the spec maps explicitly (renameTo, renameTables) are the user's choice, not the case's.
  const cased = tables.filter((t) => t.targetSchema === caseName(t.schema, nameCase));
  collide('schemas', '', new Set(cased.map((t) => t.schema)));
  // Two tables with one target name are the selection's problem already (checkSelection).
  for (const t of tables) {
    const cols = columnsOf.get(t)!;
    collide('columns', `${quoteQualified(t.schema, t.table)}.`, t.columns ?? cols.all);
  }
  return items;
}
