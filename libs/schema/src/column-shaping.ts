import type { Client } from 'pg';
import type { NameCase } from '@pgferry/core';
import { caseName, quoteIdent, quoteQualified } from '@pgferry/pg';

/** A table limited to some of its columns (objects.include[].columns). */
export interface ColumnList {
  schema: string;
  table: string;
  columns: string[];
}

const RELATION_KIND: Record<string, string> = {
  r: 'TABLE',
  p: 'TABLE',
  f: 'FOREIGN TABLE',
  v: 'VIEW',
  m: 'MATERIALIZED VIEW',
};

/** A destination name in objects.nameCase (caseName of @pgferry/pg). */
export const caseOf = caseName;

/**
 * Drops the columns a column list leaves out, in the scratch database, within the caller's
 * transaction and before any rename (lists name source names). CASCADE: an index, constraint
 * or view over a dropped column goes with it, as it could not exist on a table without that
 * column; the second dump then holds neither. Idempotent.
 */
export async function dropUnlistedColumns(
  client: Client,
  lists: readonly ColumnList[],
  step: (what: string) => void,
): Promise<void> {
  for (const l of lists) {
    const { rows } = await client.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND NOT (attname = ANY($2::text[]))
        ORDER BY attnum`,
      [quoteQualified(l.schema, l.table), l.columns],
    );
    for (const r of rows) {
      step(
        `dropping column ${quoteIdent(r.name)} of ${quoteQualified(l.schema, l.table)} (not in its column list)`,
      );
      await client.query(
        `ALTER TABLE ${quoteQualified(l.schema, l.table)} DROP COLUMN ${quoteIdent(r.name)} CASCADE`,
      );
    }
  }
}

/**
 * Renames every column of the relations of `schemas` into `nameCase` (objects.nameCase), in the
 * scratch database, before relations and schemas are renamed. The precheck has refused
 * collisions, so a rename never meets an existing name except its own.
 */
export async function caseColumns(
  client: Client,
  schemas: readonly string[],
  nameCase: NameCase,
  step: (what: string) => void,
): Promise<void> {
  const { rows } = await client.query<{ schema: string; rel: string; kind: string; col: string }>(
    `SELECT n.nspname AS schema, c.relname AS rel, c.relkind AS kind, a.attname AS col
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND NOT c.relispartition
        AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY 1, 2, a.attnum`,
    [schemas],
  );
  for (const r of rows) {
    const to = caseOf(r.col, nameCase);
    if (to === r.col) continue;
    step(`renaming column ${quoteIdent(r.col)} of ${quoteQualified(r.schema, r.rel)} to ${quoteIdent(to)}`);
    await client.query(
      `ALTER ${RELATION_KIND[r.kind]} ${quoteQualified(r.schema, r.rel)} RENAME COLUMN ${quoteIdent(r.col)} TO ${quoteIdent(to)}`,
    );
  }
}

/**
 * The relations of `schemas` (tables, views, materialized views, foreign tables; not sequences)
 * whose name changes under `nameCase`, other than those `explicit` renames: as table renames.
 */
export async function caseRelations(
  client: Client,
  schemas: readonly string[],
  nameCase: NameCase,
  explicit: ReadonlySet<string>,
): Promise<Array<{ schema: string; from: string; to: string; kind: string }>> {
  const { rows } = await client.query<{ schema: string; name: string; kind: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
      ORDER BY 1, 2`,
    [schemas],
  );
  return rows
    .filter((r) => caseOf(r.name, nameCase) !== r.name && !explicit.has(`${r.schema}\u0000${r.name}`))
    .map((r) => ({ schema: r.schema, from: r.name, to: caseOf(r.name, nameCase), kind: r.kind }));
}
