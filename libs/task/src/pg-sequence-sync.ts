import type { Client } from 'pg';
import { PermissionError, type TaskSpec } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteQualified, type SelectedTable } from '@pgferry/pg';

/** One source sequence of the selection, its state, and the destination sequence it sets. */
export interface SequenceState {
  schema: string;
  name: string;
  targetSchema: string;
  targetName: string;
  /** pg_sequences.last_value as text (int8 does not fit a JS number); null: never called yet. */
  lastValue: string | null;
  startValue: string;
}

export interface SequenceSyncResult {
  /** Set on the destination, in source order. */
  synced: SequenceState[];
  /** Selected on the source but absent on the destination (e.g. migrationTypes.schema off), quoted. */
  missing: string[];
}

interface SequenceRow {
  schema: string;
  name: string;
  owner_schema: string | null;
  owner_table: string | null;
  last_value: string | null;
  start_value: string;
  readable: boolean;
}

/**
 * Which source sequences the selection takes, with their current values, in one catalog query.
 * The rule is the schema phase's (pg-dump-selection): a sequence owned by a column (serial or
 * identity) follows its table, and is renamed with the table's schema; a sequence no column owns
 * belongs to a schema taken whole (no `tables` list, not excluded whole) and is renamed with it.
 * Read-only. Throws PermissionError naming each sequence the user may not read, with the GRANT.
 */
export async function readSequenceStates(
  source: Client,
  objects: TaskSpec['objects'],
  tables: SelectedTable[],
): Promise<SequenceState[]> {
  let rows: SequenceRow[];
  try {
    ({ rows } = await source.query<SequenceRow>(`
      SELECT n.nspname AS schema, c.relname AS name, on_.nspname AS owner_schema, oc.relname AS owner_table,
             ps.last_value::text AS last_value, s.seqstart::text AS start_value,
             has_sequence_privilege(c.oid, 'SELECT') AS readable
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN pg_class oc ON oc.oid = d.refobjid
        LEFT JOIN pg_namespace on_ ON on_.oid = oc.relnamespace
        LEFT JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = c.relname
       WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry') AND n.nspname NOT LIKE 'pg\\_toast%'
       ORDER BY 1, 2`));
  } catch (err) {
    throw classifyPgError(err, 'reading the source sequences');
  }
  const byTable = new Map(tables.map((t) => [`${t.schema}\u0000${t.table}`, t]));
  const wholeSchemas = new Map<string, string>();
  for (const inc of objects.include ?? [])
    if (!inc.tables) wholeSchemas.set(inc.schema, inc.renameTo ?? inc.schema);
  if (!objects.include) for (const t of tables) wholeSchemas.set(t.schema, t.schema);
  for (const exc of objects.exclude ?? []) if (!exc.tables) wholeSchemas.delete(exc.schema);

  const chosen: SequenceState[] = [];
  const unreadable: string[] = [];
  for (const r of rows) {
    let targetSchema: string | undefined;
    if (r.owner_schema !== null && r.owner_table !== null)
      targetSchema = byTable.get(`${r.owner_schema}\u0000${r.owner_table}`)?.targetSchema;
    else targetSchema = wholeSchemas.get(r.schema);
    if (targetSchema === undefined) continue;
    if (!r.readable) unreadable.push(quoteQualified(r.schema, r.name));
    chosen.push({
      schema: r.schema,
      name: r.name,
      targetSchema,
      targetName: r.name,
      lastValue: r.last_value,
      startValue: r.start_value,
    });
  }
  if (unreadable.length) {
    const user = (await source.query<{ u: string }>('SELECT current_user AS u')).rows[0].u;
    throw new PermissionError(
      `source user ${quoteIdent(user)} may not read sequence${unreadable.length > 1 ? 's' : ''} ${unreadable.join(', ')}, so ${unreadable.length > 1 ? 'their values' : 'its value'} cannot be carried to the destination; run on the source: ${unreadable.map((s) => `GRANT SELECT ON SEQUENCE ${s} TO ${quoteIdent(user)};`).join(' ')}`,
    );
  }
  return chosen;
}

/**
 * Carries the source's sequence values to the destination (DESIGN phase 6, and the end of a
 * full-only task): `setval(last_value, true)` for a sequence that was called, `setval(start,
 * false)` for one never called, so the next nextval() on the destination returns what it would
 * have returned on the source. One statement on each side, in one destination transaction.
 * Idempotent; call it when writes to the source have stopped (cutover) or after the full load
 * (values can only have grown since the snapshot, so the destination never reissues a value).
 */
export async function syncSequences(
  source: Client,
  destination: Client,
  objects: TaskSpec['objects'],
  tables: SelectedTable[],
): Promise<SequenceSyncResult> {
  const states = await readSequenceStates(source, objects, tables);
  if (states.length === 0) return { synced: [], missing: [] };
  try {
    const { rows } = await destination.query<{ i: number; done: boolean }>(
      `SELECT t.i, CASE WHEN to_regclass(format('%I.%I', t.s, t.n)) IS NULL THEN false
                        ELSE setval(format('%I.%I', t.s, t.n)::regclass, t.v, t.called) IS NOT NULL END AS done
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bool[]) WITH ORDINALITY AS t(s, n, v, called, i)
        ORDER BY t.i`,
      [
        states.map((s) => s.targetSchema),
        states.map((s) => s.targetName),
        states.map((s) => s.lastValue ?? s.startValue),
        states.map((s) => s.lastValue !== null),
      ],
    );
    const synced: SequenceState[] = [];
    const missing: string[] = [];
    for (const r of rows) {
      const s = states[Number(r.i) - 1];
      if (r.done) synced.push(s);
      else missing.push(quoteQualified(s.targetSchema, s.targetName));
    }
    return { synced, missing };
  } catch (err) {
    throw classifyPgError(err, 'setting the destination sequences');
  }
}

/** "3 sequences set (not on the destination: a, b)": a sync's outcome as a phase reports it. */
export function describeSequences(seq: SequenceSyncResult): string {
  return `${seq.synced.length} sequences set${seq.missing.length ? ` (not on the destination: ${seq.missing.join(', ')})` : ''}`;
}
