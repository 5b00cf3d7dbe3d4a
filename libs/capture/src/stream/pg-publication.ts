import type { Client } from 'pg';
import { ObjectError } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteQualified, type SelectedTable } from '@pgferry/pg';
import { DDL_SCHEMA, ddlObjects } from '../ddl/pg-ddl-capture';
import { heartbeatTable } from './pg-heartbeat';

/** The task's publication on the source (DESIGN phase 5; `release` drops it by this name). */
export function publicationName(task: string): string {
  return `pgferry_${task}`;
}

export interface PublicationChange {
  publication: string;
  created: boolean;
  /** "schema"."table" of each table added or removed by this call. */
  added: string[];
  removed: string[];
}

type TableRef = Pick<SelectedTable, 'schema' | 'table'> &
  Partial<Pick<SelectedTable, 'where' | 'columns' | 'operations'>> & { partitioned?: boolean };

const key = (t: { schema: string; table: string }) => quoteQualified(t.schema, t.table);

/** Publication row filters and column lists came with PostgreSQL 15. */
const FILTERS_SINCE = 150000;

/** A table of the publication's FOR TABLE / SET TABLE list, with its column list and row filter. */
function tableClause(t: TableRef): string {
  const columns = t.columns ? ` (${t.columns.map(quoteIdent).join(', ')})` : '';
  return `${key(t)}${columns}${t.where ? ` WHERE (${t.where})` : ''}`;
}

/**
 * What the publication publishes: the union of the selected tables' operations (a table's own
 * selection is then applied by the capture, which skips and counts the rest), with insert and
 * update always (the task's heartbeat and DDL tables need them).
 */
export function publishedOperations(tables: readonly TableRef[]): string {
  const ops = new Set(['insert', 'update']);
  for (const t of tables)
    for (const op of t.operations ?? ['delete', 'truncate']) if (op !== 'ddl') ops.add(op);
  return ['insert', 'update', 'delete', 'truncate'].filter((op) => ops.has(op)).join(', ');
}

/**
 * Makes publication `pgferry_<task>` hold exactly `tables` plus the task's own DDL and heartbeat
 * tables when they exist (so captured DDL and heartbeats travel in order with the rows), and
 * publish inserts, updates, deletes and truncates; partitioned tables are published through
 * their root (`publish_via_partition_root`, PostgreSQL 13+), so a row keeps one topic whichever
 * partition it lives in.
 *
 * Idempotent, and the way to keep the publication in step with a changed selection: tables are
 * added and removed in one transaction, others are left alone. Must run before the stream
 * starts (pgoutput reads the publication when it starts) and after installing the DDL capture
 * and the heartbeat table. A table added while streaming is published from the commit of this
 * call on; its earlier rows come from the snapshot of a new full load of that table.
 */
export async function ensurePublication(
  client: Client,
  task: string,
  tables: readonly TableRef[],
): Promise<PublicationChange> {
  const name = publicationName(task);
  const context = `setting up publication ${quoteIdent(name)} on the source`;
  try {
    const version = Number(
      (await client.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v,
    );
    if (version < 130000 && tables.some((t) => t.partitioned))
      throw new ObjectError(
        `${context}: partitioned tables (${tables
          .filter((t) => t.partitioned)
          .map(key)
          .join(
            ', ',
          )}) can be published through their root only on PostgreSQL 13 or later; upgrade the source or select the partitions instead`,
      );
    const own = await client.query<{ name: string }>(
      `SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL`,
      [
        [
          quoteQualified(DDL_SCHEMA, ddlObjects(task).table),
          quoteQualified(DDL_SCHEMA, heartbeatTable(task).table),
        ],
      ],
    );
    const filtered = tables.filter((t) => t.where !== undefined || t.columns !== undefined);
    if (filtered.length && version < FILTERS_SINCE)
      throw new ObjectError(
        `${context}: row filters and column lists (objects.include[].where / columns on ${filtered
          .map(key)
          .join(', ')}) need PostgreSQL 15 or later on the source; upgrade the source or remove them`,
      );
    const wanted = new Set([...tables.map(key), ...own.rows.map((r) => r.name)]);
    const clauses = [...tables.map(tableClause), ...own.rows.map((r) => r.name)];
    const options = [
      `publish = '${publishedOperations(tables)}'`,
      ...(version >= 130000 ? ['publish_via_partition_root = true'] : []),
    ].join(', ');

    await client.query('BEGIN');
    try {
      const pub = await client.query<{ oid: number; puballtables: boolean }>(
        `SELECT oid, puballtables FROM pg_publication WHERE pubname = $1 FOR UPDATE`,
        [name],
      );
      const result: PublicationChange = { publication: name, created: false, added: [], removed: [] };
      if (pub.rowCount === 0) {
        await client.query(
          `CREATE PUBLICATION ${quoteIdent(name)}${clauses.length ? ` FOR TABLE ${clauses.join(', ')}` : ''} WITH (${options})`,
        );
        Object.assign(result, { created: true, added: [...wanted] });
      } else {
        if (pub.rows[0].puballtables)
          throw new ObjectError(
            `${context}: the publication exists and is FOR ALL TABLES, so it is not pgferry's; drop it with DROP PUBLICATION ${quoteIdent(name)} or rename it`,
          );
        const { rows } = await client.query<{ schema: string; table: string; shaped: boolean }>(
          `SELECT n.nspname AS schema, c.relname AS table,
                  ${version >= FILTERS_SINCE ? 'pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL' : 'false'} AS shaped
             FROM pg_publication_rel pr
             JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE pr.prpubid = $1`,
          [pub.rows[0].oid],
        );
        const have = new Set(rows.map(key));
        result.added = [...wanted].filter((t) => !have.has(t));
        result.removed = [...have].filter((t) => !wanted.has(t));
        // SET TABLE replaces every table's filter and column list too, so a changed one holds,
        // and one the spec no longer has goes (ADD TABLE would keep a table's old filter).
        const reshape = filtered.length > 0 || rows.some((r) => r.shaped);
        if (reshape && clauses.length)
          await client.query(`ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${clauses.join(', ')}`);
        else if (result.added.length)
          await client.query(`ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${result.added.join(', ')}`);
        if (result.removed.length && !(reshape && clauses.length))
          await client.query(`ALTER PUBLICATION ${quoteIdent(name)} DROP TABLE ${result.removed.join(', ')}`);
        await client.query(`ALTER PUBLICATION ${quoteIdent(name)} SET (${options})`);
      }
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw classifyPgError(err, context);
  }
}

/** Drops the task's publication if it exists; true when it did. Idempotent. */
export async function dropPublication(client: Client, task: string): Promise<boolean> {
  const name = publicationName(task);
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
    if (!rowCount) return false;
    await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
    return true;
  } catch (err) {
    throw classifyPgError(err, `dropping publication ${quoteIdent(name)} on the source`);
  }
}
