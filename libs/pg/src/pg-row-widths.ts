import type { Client } from 'pg';
import { classifyPgError } from './classify';
import { quoteIdent, quoteQualified } from './ident';

/** The widest row of one table, as pgferry sizes its Kafka records from it. */
export interface RowWidth {
  schema: string;
  table: string;
  /** Bytes of the widest row's values (see measureRowWidths); 0 for an empty table. */
  bytes: number;
  /** True when only a sample of a large table was read: a rarer wide row may be missed. */
  sampled: boolean;
}

/** Tables up to this size (heap, TOAST and indexes) are read whole. */
export const EXACT_TABLE_BYTES = 1024 * 1024 * 1024;
/** About how much of a larger table's heap the sample reads. */
const SAMPLE_BYTES = 256 * 1024 * 1024;

/**
 * The widest row of each table, in bytes of its values as a record carries them. Cheap on big
 * tables: a text, varchar, char or bytea value counts its length as stored in the TOAST
 * pointer (octet_length reads it without fetching the value), any other variable-width value
 * its stored size (pg_column_size, compressed if TOASTed), a fixed-width value its width; a
 * table up to EXACT_TABLE_BYTES is read whole, a larger one through a TABLESAMPLE SYSTEM of
 * about SAMPLE_BYTES of its pages. Read-only; run it in any transaction (the precheck's).
 */
export async function measureRowWidths(
  client: Pick<Client, 'query'>,
  tables: ReadonlyArray<{ schema: string; table: string; bytes: number }>,
  /** Tables larger than this are sampled (tests lower it). */
  exactTableBytes = EXACT_TABLE_BYTES,
): Promise<RowWidth[]> {
  const out: RowWidth[] = [];
  for (const t of tables) {
    const name = quoteQualified(t.schema, t.table);
    try {
      const { rows: columns } = await client.query(
        `SELECT a.attname AS name, ty.typlen AS len,
                ty.typcategory = 'S' OR ty.oid = 'bytea'::regtype AS raw
           FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
          WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
        [name],
      );
      if (!columns.length) {
        out.push({ schema: t.schema, table: t.table, bytes: 0, sampled: false });
        continue;
      }
      let fixed = 0;
      const terms: string[] = [];
      for (const c of columns as Array<{ name: string; len: number; raw: boolean }>) {
        if (c.len > 0) fixed += c.len;
        else terms.push(`coalesce(${c.raw ? 'octet_length' : 'pg_column_size'}(${quoteIdent(c.name)}), 0)`);
      }
      const sampled = t.bytes > exactTableBytes;
      const percent = Math.max(
        0.01,
        Math.min(100, (100 * Math.min(SAMPLE_BYTES, exactTableBytes)) / Math.max(1, t.bytes)),
      );
      const from = sampled ? `${name} TABLESAMPLE SYSTEM (${percent.toFixed(4)})` : name;
      const width = terms.length ? `max(${terms.join(' + ')})` : '0';
      const { rows } = await client.query(`SELECT ${width}::bigint AS w, count(*) > 0 AS any FROM ${from}`);
      const bytes = rows[0].any ? Number(rows[0].w ?? 0) + fixed : 0;
      out.push({ schema: t.schema, table: t.table, bytes, sampled });
    } catch (err) {
      throw classifyPgError(err, `measuring the widest row of ${name}`);
    }
  }
  return out;
}
