import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { DataError } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteQualified } from '@pgferry/pg';
import { lockTruncateLsn, storeOffsets, storeTruncateLsn, type OffsetMark } from '@pgferry/control';
import { columnTypeNames, rowsAsArrays, setReplicaRole } from './pg-apply-session';
import { dq, names, type TargetTable } from './pg-row-applier';
import type { DecodedChange } from '@pgferry/avro';
import { columnIndex, planKeyedChanges, type KeyAction } from './change-plan';
import { moduleChanges } from './transform-row-module';
import { createStageSql } from './transform-sql';
import { applyTransformedActions } from './transform-actions';

export interface ChangeApplyCounts {
  upserted: number;
  deleted: number;
  truncated: number;
  /** Older than a truncate already applied (from another partition): their effect is gone. */
  skipped: number;
}

/**
 * Applies change records (c, u, d, t; r too) of one destination table, in source order, and the
 * consumed offset, in one transaction: either all of it takes effect or none, so a restart that
 * replays from the stored offset applies every change exactly once.
 *
 * Keyed tables are applied in bulk and idempotently: the batch is reduced to the last action per
 * key (planKeyedChanges), deletes go through one DELETE ... USING the key list, upserts through
 * one INSERT ... ON CONFLICT (key) DO UPDATE that leaves out the TOAST columns the source did not
 * send; each statement carries its rows as one text[] parameter per column (rowsAsArrays), so a
 * table's run is one round trip whatever its size, with no staging table (a transformed table
 * still stages its rows: its statements are written by transform-actions). Consecutive inserts
 * of a keyless table go in one INSERT the same way; its other changes (replica identity full)
 * are applied one change at a time, matching a single row on every column's text.
 *
 * Requires: the destination session may set session_replication_role (destination triggers and
 * foreign keys do not fire twice), and keyed targets have a unique index on the key.
 */
export class PgChangeApplier {
  private prepared = false;
  private stages = new Set<string>();
  /** Staging tables emptied by the last commit (ON COMMIT DELETE ROWS) and not written since. */
  private empty = new Set<string>();
  /** After a rollback to a savepoint a staging table may hold rows written before it. */
  private mayHoldRows = false;
  /**
   * The destination table's column types (columnTypeNames), per list of record columns: the
   * decoder gives the changes of one writer schema one `columns` array, so a schema change on
   * the source (a new writer schema, the statement applied here before its changes) looks the
   * types up again, and a run costs no lookup otherwise.
   */
  private readonly types = new WeakMap<readonly string[], { target: string; types: Map<string, string> }>();

  constructor(private readonly client: Client) {}

  /**
   * Applies `changes` and stores `mark`, atomically. With a mark, TRUNCATE is applied once per
   * table however many partitions carry a copy of it: the truncate's LSN is kept in
   * pgferry.truncates (locked for the transaction), a copy at or below it is skipped, and so is
   * every change older than it, whichever partition it arrives on (its effect was erased on the
   * source too). Snapshot rows count as older than any truncate.
   */
  async apply(
    t: TargetTable,
    changes: readonly DecodedChange[],
    mark: OffsetMark | null,
  ): Promise<ChangeApplyCounts> {
    await this.prepare();
    try {
      await this.client.query('BEGIN');
      const counts = await this.applyInTransaction(t, changes, mark?.group ?? null);
      if (mark) await storeOffsets(this.client, mark.group, [mark]);
      await this.client.query('COMMIT');
      this.transactionCommitted();
      return counts;
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      this.forgetStages();
      throw classifyPgError(
        err,
        `applying ${changes.length} changes to ${quoteQualified(t.schema, t.table)}`,
      );
    }
  }

  /**
   * Applies `changes` inside the caller's open transaction (BEGIN issued, COMMIT or ROLLBACK
   * left to the caller, which calls `forgetStages` after a rollback). With a consumer `group`,
   * truncates are applied once per table as in `apply`. Errors are classified and name the table.
   */
  async applyInTransaction(
    t: TargetTable,
    changes: readonly DecodedChange[],
    group: string | null,
  ): Promise<ChangeApplyCounts> {
    await this.prepare();
    const target = quoteQualified(t.schema, t.table);
    const counts: ChangeApplyCounts = { upserted: 0, deleted: 0, truncated: 0, skipped: 0 };
    try {
      const guard =
        group !== null
          ? await this.truncateGuard(
              group,
              t,
              changes.some((c) => c.op === 't'),
            )
          : null;
      let truncatedAt = guard?.lsn ?? 0n;
      const live = guard
        ? changes.filter((c) => {
            const lsn = c.source.lsn ?? 0n;
            const keep = c.op === 't' ? lsn > truncatedAt : lsn >= truncatedAt;
            if (!keep) counts.skipped++;
            return keep;
          })
        : changes;
      if (t.key.length) {
        // A transformed table's module sees each change first (transform-row-module.ts).
        const viewed = t.transform?.module ? moduleChanges(t.transform, live) : live;
        for (const step of planKeyedChanges(t, viewed)) {
          if (step.kind === 'truncate') {
            await this.truncate(target);
            counts.truncated++;
            if (step.lsn !== null && step.lsn > truncatedAt) truncatedAt = step.lsn;
          } else {
            const r = await this.applyActions(t, step.actions);
            counts.upserted += r.upserted;
            counts.deleted += r.deleted;
          }
        }
      } else {
        // Consecutive inserts (and snapshot rows) of a keyless table go in one INSERT.
        let inserts: Array<Array<string | null>> = [];
        const flush = async () => {
          if (!inserts.length) return;
          const { params, from } = rowsAsArrays(inserts, t.columns.length);
          const typed = await this.typed(t, t.columns);
          await this.client.query(
            `INSERT INTO ${target} (${t.columns.map((c) => dq(t, c)).join(', ')}) OVERRIDING SYSTEM VALUE SELECT ${typed.join(', ')} FROM ${from}`,
            params,
          );
          counts.upserted += inserts.length;
          inserts = [];
        };
        for (const ch of live) {
          if (ch.op === 'c' || ch.op === 'r') {
            const idx = columnIndex(t, ch);
            inserts.push(idx.map((i) => ch.after![i]));
            continue;
          }
          await flush();
          await this.applyKeyless(t, ch, counts);
          if (ch.op === 't' && ch.source.lsn !== null && ch.source.lsn > truncatedAt)
            truncatedAt = ch.source.lsn;
        }
        await flush();
      }
      if (guard && truncatedAt > guard.lsn)
        await storeTruncateLsn(this.client, guard.group, t.schema, t.table, truncatedAt);
      return counts;
    } catch (err) {
      if (err instanceof DataError) throw err;
      throw classifyPgError(err, `applying ${changes.length} changes to ${target}`);
    }
  }

  /**
   * After a ROLLBACK (or, `toSavepoint`, a ROLLBACK TO SAVEPOINT) of the caller's transaction:
   * staging tables created since are gone, so they are created anew when next used; after a
   * savepoint those that stay may still hold rows written before it, so they are emptied too.
   */
  forgetStages(toSavepoint = false): void {
    this.stages.clear();
    this.empty.clear();
    this.mayHoldRows = toSavepoint;
  }

  /** The caller of applyInTransaction committed: the staging tables are empty again. */
  transactionCommitted(): void {
    for (const name of this.stages) this.empty.add(name);
    this.mayHoldRows = false;
  }

  /** The table's last applied truncate, locked (see lockTruncateLsn). */
  private async truncateGuard(
    group: string,
    t: TargetTable,
    exclusive: boolean,
  ): Promise<{ group: string; lsn: bigint }> {
    return { group, lsn: await lockTruncateLsn(this.client, group, t.schema, t.table, exclusive) };
  }

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    await setReplicaRole(this.client);
    // As PostgreSQL's own subscriptions do (their synchronous_commit defaults to off): a change
    // batch and its next offset commit in one transaction, so a destination crash that loses the
    // last commits loses their offsets with them, and the applier applies those records again
    // from Kafka, which still holds them (the slot moved on only once Kafka acknowledged them).
    // Nothing is lost or applied twice, and no batch waits for a WAL flush. The cutover's own
    // writes (pgferry.phases) commit synchronously, which flushes every batch before them.
    await this.client.query('SET synchronous_commit = off');
    this.prepared = true;
  }

  /**
   * TRUNCATE is refused on a table other tables reference by foreign key unless they are
   * truncated in the same statement, which per-table apply cannot promise; DELETE does the same
   * with replica role (foreign-key triggers do not fire), so it is the fallback.
   */
  private async truncate(target: string): Promise<void> {
    await this.client.query('SAVEPOINT pgferry_truncate');
    try {
      await this.client.query(`TRUNCATE ${target}`);
      await this.client.query('RELEASE SAVEPOINT pgferry_truncate');
    } catch (err) {
      if ((err as { code?: string }).code !== '0A000') throw err;
      await this.client.query('ROLLBACK TO SAVEPOINT pgferry_truncate');
      await this.client.query(`DELETE FROM ${target}`);
    }
  }

  /**
   * `s.c<i>::<type of columns[i]>` for each of `columns` of t: the values of a rowsAsArrays
   * FROM item, cast to the destination column's type (text in, parsed as COPY would).
   */
  private async typed(t: TargetTable, columns: readonly string[]): Promise<string[]> {
    const target = quoteQualified(t.schema, t.table);
    const dest = names(t, columns);
    const known = this.types.get(t.columns);
    let types = known?.target === target ? known.types : null;
    if (!types || dest.some((c) => !types!.has(c))) {
      types = await columnTypeNames(this.client, target);
      this.types.set(t.columns, { target, types });
    }
    return dest.map((c, i) => {
      const type = types!.get(c);
      if (type === undefined)
        throw new DataError(
          `column ${quoteIdent(c)} of ${target} does not exist on the destination; add it there (or carry the schema change that adds it) and restart the task`,
        );
      return `s.c${i}::${type}`;
    });
  }

  /** A session-local staging table with `columns` of the target's types (a transformed table's: the source's) and no constraints. */
  private async stage(t: TargetTable, role: string, columns: readonly string[]): Promise<string> {
    const name = quoteIdent(
      `pgferry_${role}_${createHash('sha1')
        .update(`${t.schema}\u0000${t.table}\u0000${columns.join('\u0000')}`)
        .digest('hex')
        .slice(0, 16)}`,
    );
    if (!this.stages.has(name)) {
      await this.client.query(
        t.transform
          ? createStageSql(t.transform, name, columns)
          : `CREATE TEMP TABLE IF NOT EXISTS ${name} ON COMMIT DELETE ROWS AS SELECT ${columns.map((c) => dq(t, c)).join(', ')} FROM ${quoteQualified(t.schema, t.table)} WITH NO DATA`,
      );
      this.stages.add(name);
      if (this.mayHoldRows) await this.client.query(`TRUNCATE ${name}`);
    } else if (!this.empty.delete(name)) {
      // Written earlier in this transaction.
      await this.client.query(`TRUNCATE ${name}`);
    }
    return name;
  }

  private async applyActions(
    t: TargetTable,
    actions: Map<string, KeyAction>,
  ): Promise<{ upserted: number; deleted: number }> {
    if (t.transform)
      return applyTransformedActions(this.client, t, t.transform, actions, (role, cols) =>
        this.stage(t, role, cols),
      );
    const target = quoteQualified(t.schema, t.table);
    const deletes: Array<Array<string | null>> = [];
    // Upserts grouped by which TOAST columns they leave out (almost always one or two groups).
    const upserts = new Map<string, { unchanged: string[]; rows: Array<Array<string | null>> }>();
    const moves: Array<Extract<KeyAction, { kind: 'move' }>> = [];
    for (const a of actions.values()) {
      if (a.kind === 'delete') deletes.push(a.key);
      else if (a.kind === 'move') moves.push(a);
      else {
        const unchanged = t.columns.filter((c) => a.unchanged.has(c));
        const g = upserts.get(unchanged.join('\u0000')) ?? { unchanged, rows: [] };
        g.rows.push(a.values);
        upserts.set(unchanged.join('\u0000'), g);
      }
    }
    let movedRows = 0;
    // Moves first: a delete of the old key in the same batch came after the move.
    // A moved row keeps the TOAST values the source did not send: UPDATE it under its old key.
    for (const m of moves) {
      const params: Array<string | null> = [];
      const sets = t.columns
        .filter((c) => !m.unchanged.has(c))
        .map((c) => `${dq(t, c)} = $${params.push(m.values[t.columns.indexOf(c)])}`);
      const where = t.key.map((k) => `${dq(t, k)} = $${params.push(m.from[t.columns.indexOf(k)])}`);
      const moved = await this.client.query(
        `UPDATE ${target} SET ${sets.join(', ')} WHERE ${where.join(' AND ')}`,
        params,
      );
      if (moved.rowCount) {
        movedRows++;
        continue;
      }
      // The old row is not here (another partition deleted it first, or never had it): the
      // unsent TOAST values exist nowhere else, and writing NULL would lose them silently.
      throw new DataError(
        `cannot move the row of ${target} from key (${m.from.join(', ')}) to (${m.values.filter((_, i) => t.key.includes(t.columns[i])).join(', ')}): the source did not send the unchanged TOAST column(s) ${[...m.unchanged].join(', ')} and the row under the old key is not on the destination; give the table REPLICA IDENTITY FULL on the source, or use one partition for its topic`,
      );
    }
    let deleted = 0;
    if (deletes.length) {
      const { params, from } = rowsAsArrays(deletes, t.key.length);
      const typed = await this.typed(t, t.key);
      const match = t.key.map((k, i) => `d.${dq(t, k)} = ${typed[i]}`).join(' AND ');
      deleted = (await this.client.query(`DELETE FROM ${target} AS d USING ${from} WHERE ${match}`, params))
        .rowCount!;
    }
    let upserted = movedRows;
    for (const { unchanged, rows } of upserts.values()) {
      const cols = t.columns.filter((c) => !unchanged.includes(c));
      const pos = cols.map((c) => t.columns.indexOf(c));
      const { params, from } = rowsAsArrays(rows, cols.length, pos);
      const typed = await this.typed(t, cols);
      const value = new Map(cols.map((c, i) => [c, typed[i]]));
      const list = cols.map((c) => dq(t, c)).join(', ');
      const set = cols.filter((c) => !t.key.includes(c));
      if (unchanged.length) {
        // Rows whose TOASTed column(s) the source did not send: their values are only in the
        // destination's row, so these are UPDATEs of it (an INSERT ... ON CONFLICT would check
        // the proposed row, NULL there, against NOT NULL before finding the conflict).
        const match = t.key.map((k) => `d.${dq(t, k)} = ${value.get(k)!}`).join(' AND ');
        const updated = set.length
          ? (
              await this.client.query(
                `UPDATE ${target} AS d SET ${set.map((c) => `${dq(t, c)} = ${value.get(c)!}`).join(', ')} FROM ${from} WHERE ${match}`,
                params,
              )
            ).rowCount!
          : rows.length;
        if (updated !== rows.length) {
          const { rows: missing } = await this.client.query(
            `SELECT ${t.key.map((k, i) => `${value.get(k)!}::text AS k${i}`).join(', ')} FROM ${from}
              WHERE NOT EXISTS (SELECT 1 FROM ${target} AS d WHERE ${match}) LIMIT 5`,
            params,
          );
          throw new DataError(
            `cannot update ${rows.length - updated} row(s) of ${target} (keys ${missing.map((r) => `(${Object.values(r).join(', ')})`).join(', ')}${rows.length - updated > 5 ? ', ...' : ''}): the source did not send the unchanged TOAST column(s) ${unchanged.join(', ')} and the rows are not on the destination, so their values exist nowhere; the tables have diverged (give the table REPLICA IDENTITY FULL on the source to carry every value)`,
          );
        }
        upserted += updated;
        continue;
      }
      const conflict = `ON CONFLICT (${t.key.map((k) => dq(t, k)).join(', ')}) DO ${set.length ? `UPDATE SET ${set.map((c) => `${dq(t, c)} = EXCLUDED.${dq(t, c)}`).join(', ')}` : 'NOTHING'}`;
      upserted += (
        await this.client.query(
          `INSERT INTO ${target} (${list}) OVERRIDING SYSTEM VALUE SELECT ${typed.join(', ')} FROM ${from} ${conflict}`,
          params,
        )
      ).rowCount!;
    }
    return { upserted, deleted };
  }

  /**
   * A table without a key (replica identity full): every change matches exactly one row by all
   * of its columns (compared as text, so types without an equality operator such as json work;
   * the session settings make text forms identical on both sides). A change that matches no row
   * is a divergence and stops the task with the row.
   */
  private async applyKeyless(t: TargetTable, ch: DecodedChange, counts: ChangeApplyCounts): Promise<void> {
    const target = quoteQualified(t.schema, t.table);
    if (ch.op === 't') {
      await this.truncate(target);
      counts.truncated++;
      return;
    }
    const idx = columnIndex(t, ch);
    const pick = (row: ReadonlyArray<string | null>) => idx.map((i) => row[i]);
    if (ch.op === 'c' || ch.op === 'r') {
      const values = pick(ch.after!);
      // Untyped parameters take the type of the column they are assigned to.
      await this.client.query(
        `INSERT INTO ${target} (${t.columns.map((c) => dq(t, c)).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${t.columns.map((_, i) => `$${i + 1}`).join(', ')})`,
        values,
      );
      counts.upserted++;
      return;
    }
    if (!ch.before)
      throw new DataError(
        `a ${ch.op === 'u' ? 'update' : 'delete'} record for ${target} (no key) has no before image; run ALTER TABLE ${quoteQualified(ch.source.schema, ch.source.table)} REPLICA IDENTITY FULL on the source`,
      );
    const before = pick(ch.before);
    const where = t.columns
      .map((c, i) => `${dq(t, c)}::text IS NOT DISTINCT FROM $${i + 1}::text`)
      .join(' AND ');
    const row = `(SELECT ctid FROM ${target} WHERE ${where} LIMIT 1)`;
    let n: number;
    if (ch.op === 'd') {
      n = (await this.client.query(`DELETE FROM ${target} WHERE ctid = ${row}`, before)).rowCount!;
      counts.deleted += n;
    } else {
      const after = pick(ch.after!);
      const unchanged = new Set(ch.unchangedToast);
      const params: Array<string | null> = [...before];
      const sets: string[] = [];
      t.columns.forEach((c, i) => {
        if (unchanged.has(c)) return;
        params.push(after[i]);
        sets.push(`${dq(t, c)} = $${params.length}`);
      });
      n = (await this.client.query(`UPDATE ${target} SET ${sets.join(', ')} WHERE ctid = ${row}`, params))
        .rowCount!;
      counts.upserted += n;
    }
    if (n === 0)
      throw new DataError(
        `${ch.op === 'd' ? 'delete' : 'update'} of a row of ${target} (no key) found no matching row on the destination: the tables have diverged (row ${JSON.stringify(before)})`,
      );
  }
}
