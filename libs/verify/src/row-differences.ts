import type { Client } from 'pg';
import { classifyPgError, quoteIdent } from '@pgferry/pg';
import { rangeCondition, VERIFY_SESSION_SETTINGS, type KeyRange } from './verify-plan';

/** One row that differs, by key: missing on one side, or a column whose values differ. */
export interface RowDifference {
  /** The key as `(col, ...)=(value, ...)`, PostgreSQL's way of naming a row in errors. */
  key: string;
  kind: 'missing' | 'extra' | 'value';
  /** kind value: the first column that differs, and its values as JSON text (expected, found). */
  column?: string;
  expected?: string;
  found?: string;
}

export interface RowSides {
  /** The side that holds what should be (replay's rebuilt database), and its relation (quoted). */
  expected: { client: Client; relation: string };
  /** The side under test. */
  actual: { client: Client; relation: string };
}

/**
 * The first `limit` rows of a key range that differ between the two sides, in the expected
 * side's key order (rows only on the actual side after them): the narrowing after a range's
 * counts or checksums differed. Reads the range's rows of both sides (a range holds at most
 * verify's chunkRows), each as key texts and its to_jsonb, under VERIFY_SESSION_SETTINGS, in a
 * read-only transaction. Read-only; safe to repeat.
 */
export async function rowDifferences(
  sides: RowSides,
  key: readonly string[],
  range: KeyRange,
  limit = 5,
): Promise<RowDifference[]> {
  const [expected, actual] = await Promise.all([
    rangeRows(sides.expected.client, sides.expected.relation, key, range),
    rangeRows(sides.actual.client, sides.actual.relation, key, range),
  ]);
  const out: RowDifference[] = [];
  const name = (k: string) => {
    const values = (JSON.parse(k) as Array<string | null>).map((v) => (v === null ? 'NULL' : v));
    return `(${key.map(quoteIdent).join(', ')})=(${values.join(', ')})`;
  };
  for (const [k, row] of expected) {
    if (out.length >= limit) return out;
    const other = actual.get(k);
    if (other === undefined) {
      out.push({ key: name(k), kind: 'missing' });
      continue;
    }
    if (other === row) continue;
    const e = JSON.parse(row) as Record<string, unknown>;
    const a = JSON.parse(other) as Record<string, unknown>;
    const column = [...new Set([...Object.keys(e), ...Object.keys(a)])].find(
      (c) => JSON.stringify(e[c] ?? null) !== JSON.stringify(a[c] ?? null),
    );
    if (column === undefined) continue;
    out.push({
      key: name(k),
      kind: 'value',
      column,
      expected: JSON.stringify(e[column] ?? null),
      found: JSON.stringify(a[column] ?? null),
    });
  }
  for (const k of actual.keys()) {
    if (out.length >= limit) break;
    if (!expected.has(k)) out.push({ key: name(k), kind: 'extra' });
  }
  return out;
}

/** Key texts (a JSON array) -> the row's to_jsonb text, in key order. */
async function rangeRows(
  client: Client,
  relation: string,
  key: readonly string[],
  range: KeyRange,
): Promise<Map<string, string>> {
  const where = rangeCondition(key, range.from, range.to);
  const cols = key.map(quoteIdent);
  try {
    await client.query('BEGIN READ ONLY');
    for (const [setting, value] of VERIFY_SESSION_SETTINGS)
      await client.query('SELECT set_config($1, $2, true)', [setting, value]);
    const { rows } = await client.query(
      `SELECT json_build_array(${cols.map((c) => `${c}::text`).join(', ')})::text AS k, to_jsonb(t)::text AS r
         FROM (SELECT * FROM ${relation}) t WHERE ${where.sql} ORDER BY ${cols.join(', ')}`,
      where.params,
    );
    await client.query('COMMIT');
    return new Map(rows.map((r) => [r.k as string, r.r as string]));
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, `reading the differing rows of ${relation}`);
  }
}
