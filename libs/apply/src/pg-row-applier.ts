import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import type { NameCase } from '@pgferry/core';
import { caseName, classifyPgError, quoteIdent, quoteQualified, copyChunks } from '@pgferry/pg';
import { chunkSentAgain, storeOffset, type OffsetMark } from '@pgferry/control';
import { copyInto, hasUniqueIndexOn, setReplicaRole, type CopyFormat } from './pg-apply-session';

/** Where a topic's rows go: destination table, the columns the values are in, its key. */
export interface TargetTable {
  schema: string;
  table: string;
  /** Columns in value order (generated columns excluded). */
  columns: string[];
  /** Key columns (subset of columns); empty for a keyless table. */
  key: string[];
  /**
   * objects.nameCase: `columns` and `key` are the records' (source) names, and the statements
   * name the destination's columns in this case (omitted or source: as they are).
   */
  nameCase?: NameCase;
}

/** The destination's names of `columns` of t (see TargetTable.nameCase). */
export function names(t: Pick<TargetTable, 'nameCase'>, columns: readonly string[]): string[] {
  return t.nameCase && t.nameCase !== 'source' ? columns.map((c) => caseName(c, t.nameCase)) : [...columns];
}

/** The destination's column `c` of t, quoted (see TargetTable.nameCase). */
export function dq(t: Pick<TargetTable, 'nameCase'>, c: string): string {
  return quoteIdent(caseName(c, t.nameCase));
}

/**
 * A destination table loaded before its key exists (see prepareKeyConstraints): its rows are
 * copied straight in, until a chunk of it is sent again (pgferry.chunks attempt above 1, after a
 * capture restart); the applier then creates the key first, and the key absorbs the rows sent
 * twice. Rows are sent again only after beginChunk committed the new attempt, and they are
 * fetched after they were sent, so the attempt is visible to the batch that brings them.
 */
export interface DeferredKey {
  /** The destination table, quoted and qualified. */
  target: string;
  /** Its key columns. */
  key: string[];
  /** The source table as the chunk plan names it (pgferry.chunks.source_table). */
  sourceTable: string;
  /** Creates the key on the destination, named as on the source. */
  sql: string;
}

/** The tables of one task whose key comes after the load. */
export interface DeferredKeys {
  /** The task, as pgferry.chunks names it. */
  task: string;
  keys: DeferredKey[];
}

/**
 * Applies snapshot rows to one destination table in bulk, with the consumed offset, in one
 * transaction. Idempotent for keyed tables: applying the same rows again leaves the table as
 * it was, so a re-sent chunk or a replayed batch never duplicates a row. Triggers and foreign
 * keys of the destination do not fire (session_replication_role = replica).
 *
 * Two ways, with the same result:
 * - direct: COPY straight into the table, inside a savepoint. When no key of the batch is in
 *   the table yet and none is twice in the batch, an upsert is exactly an insert, so the result
 *   is the upsert's. Otherwise the key's unique index makes COPY fail (unique_violation) and
 *   the batch is applied again the staged way after ROLLBACK TO SAVEPOINT, in the same
 *   transaction as its offset. Taken only when the destination has a non-deferrable unique
 *   index on exactly the key: a deferrable key is checked by a trigger, which does not fire
 *   under session_replication_role = replica, so COPY would let a duplicate in.
 * - staged: COPY into a temporary staging table, then one INSERT ... ON CONFLICT (key) DO
 *   UPDATE. A table whose direct COPY conflicted once (a chunk re-sent after a crash, rows from
 *   an earlier load) stays on this way for the rest of the applier's life.
 * A keyless table has no conflict to absorb: both ways are a plain insert, and it goes direct.
 * A table whose key is deferred (DeferredKey) has no conflict to absorb either until a chunk of
 * it is sent again: its batches are copied straight in until then.
 */
export class PgRowApplier {
  private staged = new Set<string>();
  private prepared = false;
  /** Per destination table: may its batches go direct? (see the class comment) */
  private direct = new Map<string, boolean>();
  /** Deferred keys by destination table, until this applier saw the key on the destination. */
  private readonly deferred: Map<string, DeferredKey>;

  constructor(
    private readonly client: Client,
    private readonly deferredKeys?: DeferredKeys,
  ) {
    this.deferred = new Map(deferredKeys?.keys.map((k) => [k.target, k]));
  }

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    await setReplicaRole(this.client);
    this.prepared = true;
  }

  private stageName(t: TargetTable): string {
    return `pgferry_stage_${createHash('sha1').update(`${t.schema}\u0000${t.table}`).digest('hex').slice(0, 16)}`;
  }

  /** Rows as text values (NULL as null), in t.columns order. */
  async applyRows(
    t: TargetTable,
    rows: ReadonlyArray<ReadonlyArray<string | null>>,
    mark: OffsetMark | null,
  ): Promise<void> {
    const chunks = copyChunks(rows);
    await this.applyCopyText(t, chunks, rows.length, mark);
  }

  /**
   * Rows as COPY text: `chunks` hold `rows` whole lines, each ending with a newline, in
   * t.columns order. Same guarantees as applyRows.
   */
  async applyCopyText(
    t: TargetTable,
    chunks: ReadonlyArray<Buffer | string>,
    rows: number,
    mark: OffsetMark | null,
  ): Promise<void> {
    await this.applyCopy(t, chunks, rows, mark, 'text');
  }

  /**
   * Rows as COPY `format`: in text, as applyCopyText; in binary, `chunks` are the whole COPY
   * binary stream (header, `rows` tuples of t.columns, trailer), whose field types must be the
   * destination columns' own (binary receive functions do not convert). Same guarantees as
   * applyRows, on the same ways (the staging table has the destination's column types).
   */
  async applyCopy(
    t: TargetTable,
    chunks: ReadonlyArray<Buffer | string>,
    rows: number,
    mark: OffsetMark | null,
    format: CopyFormat,
  ): Promise<void> {
    await this.prepare();
    const target = quoteQualified(t.schema, t.table);
    let keyed = false;
    try {
      await this.client.query('BEGIN');
      if (rows > 0) {
        let done = false;
        const deferred = this.deferred.get(target);
        if (deferred) {
          keyed = await this.keyIfResent(deferred);
          if (!keyed) {
            await copyInto(this.client, target, names(t, t.columns), chunks, format);
            done = true;
          }
        }
        if (!done && (await this.mayGoDirect(t))) {
          await this.client.query('SAVEPOINT pgferry_direct');
          try {
            await copyInto(this.client, target, names(t, t.columns), chunks, format);
            await this.client.query('RELEASE SAVEPOINT pgferry_direct');
            done = true;
          } catch (err) {
            if ((err as { code?: string }).code !== '23505') throw err;
            await this.client.query('ROLLBACK TO SAVEPOINT pgferry_direct');
            this.direct.set(target, false);
          }
        }
        if (!done) await this.stageAndUpsert(t, target, chunks, format);
      }
      if (mark) await storeOffset(this.client, mark.group, mark.topic, mark.partition, mark.nextOffset);
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      if (keyed) this.direct.delete(target);
      throw classifyPgError(err, `applying ${rows} rows to ${target}`);
    }
    if (keyed) this.deferred.delete(target);
  }

  /**
   * In the batch's transaction: when a chunk of the table was sent again, makes sure the table
   * has its key (creating it if no other lane did) and returns true; the batch then takes the
   * keyed ways. The table lock makes lanes create the key one at a time, and a lane whose COPY
   * into the table is under way finish first: the key is built over rows sent once each.
   */
  private async keyIfResent(d: DeferredKey): Promise<boolean> {
    if (!(await chunkSentAgain(this.client, this.deferredKeys!.task, d.sourceTable))) return false;
    await this.client.query(`LOCK TABLE ${d.target} IN ACCESS EXCLUSIVE MODE`);
    if (!(await hasUniqueIndexOn(this.client, d.target, d.key))) await this.client.query(d.sql);
    this.direct.delete(d.target);
    return true;
  }

  /** Whether a batch for t may try the direct way (asked of the destination once per table). */
  private async mayGoDirect(t: TargetTable): Promise<boolean> {
    const target = quoteQualified(t.schema, t.table);
    let ok = this.direct.get(target);
    if (ok === undefined) {
      ok = !t.key.length || (await hasUniqueIndexOn(this.client, target, names(t, t.key), true));
      this.direct.set(target, ok);
    }
    return ok;
  }

  private async stageAndUpsert(
    t: TargetTable,
    target: string,
    chunks: ReadonlyArray<Buffer | string>,
    format: CopyFormat,
  ): Promise<void> {
    const cols = t.columns.map((c) => dq(t, c)).join(', ');
    const stage = quoteIdent(this.stageName(t));
    if (!this.staged.has(stage)) {
      await this.client.query(
        `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
      );
      this.staged.add(stage);
    }
    await copyInto(this.client, stage, names(t, t.columns), chunks, format);
    const nonKey = t.columns.filter((c) => !t.key.includes(c));
    const conflict = t.key.length
      ? `ON CONFLICT (${t.key.map((k) => dq(t, k)).join(', ')}) DO ${nonKey.length ? `UPDATE SET ${nonKey.map((c) => `${dq(t, c)} = EXCLUDED.${dq(t, c)}`).join(', ')}` : 'NOTHING'}`
      : '';
    // A batch can hold one key twice (a chunk re-sent after a crash): the last one wins, and
    // ON CONFLICT must not see the key twice in one statement. ctid is arrival order in the
    // staging table, which is emptied at every commit.
    const source = t.key.length
      ? `SELECT DISTINCT ON (${t.key.map((k) => dq(t, k)).join(', ')}) ${cols} FROM ${stage} ORDER BY ${t.key.map((k) => dq(t, k)).join(', ')}, ctid DESC`
      : `SELECT ${cols} FROM ${stage}`;
    await this.client.query(`INSERT INTO ${target} (${cols}) OVERRIDING SYSTEM VALUE ${source} ${conflict}`);
  }
}
