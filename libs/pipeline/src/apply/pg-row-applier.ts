import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteQualified } from '@pgferry/pg';
import { storeOffset } from '../control/control-store';
import { copyChunks } from './copy-text';
import { copyInto, setReplicaRole } from './pg-apply-session';

/** Where a topic's rows go: destination table, the columns the values are in, its key. */
export interface TargetTable {
  schema: string;
  table: string;
  /** Columns in value order (generated columns excluded). */
  columns: string[];
  /** Key columns (subset of columns); empty for a keyless table. */
  key: string[];
}

export interface OffsetMark {
  group: string;
  topic: string;
  partition: number;
  /** The offset after the last record of the batch. */
  nextOffset: bigint;
  /**
   * The stream position (see streamPosition) of the last change applied in this partition,
   * when the batch had any: a change sent again after a capture restart is recognised by it.
   */
  streamPos?: Buffer | null;
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
 */
export class PgRowApplier {
  private staged = new Set<string>();
  private prepared = false;
  /** Per destination table: may its batches go direct? (see the class comment) */
  private direct = new Map<string, boolean>();

  constructor(private readonly client: Client) {}

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
    await this.prepare();
    const target = quoteQualified(t.schema, t.table);
    try {
      await this.client.query('BEGIN');
      if (rows > 0) {
        let done = false;
        if (await this.mayGoDirect(t)) {
          await this.client.query('SAVEPOINT pgferry_direct');
          try {
            await copyInto(this.client, target, t.columns, chunks);
            await this.client.query('RELEASE SAVEPOINT pgferry_direct');
            done = true;
          } catch (err) {
            if ((err as { code?: string }).code !== '23505') throw err;
            await this.client.query('ROLLBACK TO SAVEPOINT pgferry_direct');
            this.direct.set(target, false);
          }
        }
        if (!done) await this.stageAndUpsert(t, target, chunks);
      }
      if (mark) await storeOffset(this.client, mark.group, mark.topic, mark.partition, mark.nextOffset);
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw classifyPgError(err, `applying ${rows} rows to ${target}`);
    }
  }

  /** Whether a batch for t may try the direct way (asked of the destination once per table). */
  private async mayGoDirect(t: TargetTable): Promise<boolean> {
    const target = quoteQualified(t.schema, t.table);
    let ok = this.direct.get(target);
    if (ok === undefined) {
      if (!t.key.length) ok = true;
      else {
        const { rows } = await this.client.query(
          `SELECT 1 FROM pg_index x WHERE x.indrelid = $1::regclass AND x.indisunique AND x.indimmediate AND x.indpred IS NULL AND x.indexprs IS NULL
              AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) = $2::text[]`,
          [target, t.key],
        );
        ok = rows.length > 0;
      }
      this.direct.set(target, ok);
    }
    return ok;
  }

  private async stageAndUpsert(
    t: TargetTable,
    target: string,
    chunks: ReadonlyArray<Buffer | string>,
  ): Promise<void> {
    const cols = t.columns.map(quoteIdent).join(', ');
    const stage = quoteIdent(this.stageName(t));
    if (!this.staged.has(stage)) {
      await this.client.query(
        `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
      );
      this.staged.add(stage);
    }
    await copyInto(this.client, stage, t.columns, chunks);
    const nonKey = t.columns.filter((c) => !t.key.includes(c));
    const conflict = t.key.length
      ? `ON CONFLICT (${t.key.map(quoteIdent).join(', ')}) DO ${nonKey.length ? `UPDATE SET ${nonKey.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}` : 'NOTHING'}`
      : '';
    // A batch can hold one key twice (a chunk re-sent after a crash): the last one wins, and
    // ON CONFLICT must not see the key twice in one statement. ctid is arrival order in the
    // staging table, which is emptied at every commit.
    const source = t.key.length
      ? `SELECT DISTINCT ON (${t.key.map(quoteIdent).join(', ')}) ${cols} FROM ${stage} ORDER BY ${t.key.map(quoteIdent).join(', ')}, ctid DESC`
      : `SELECT ${cols} FROM ${stage}`;
    await this.client.query(`INSERT INTO ${target} (${cols}) OVERRIDING SYSTEM VALUE ${source} ${conflict}`);
  }
}
