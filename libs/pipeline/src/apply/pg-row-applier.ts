import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { classifyPgError, quoteIdent, quoteQualified } from '@pgferry/pg';
import { storeOffset } from '../control/control-store';
import { copyLine } from './copy-text';

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
}

/**
 * Applies snapshot rows to one destination table in bulk: COPY into a temporary staging table,
 * then one INSERT ... ON CONFLICT (key) DO UPDATE, and the consumed offset, in one transaction.
 * Idempotent for keyed tables: applying the same rows again leaves the table as it was, so a
 * re-sent chunk or a replayed batch never duplicates a row. Triggers and foreign keys of the
 * destination do not fire (session_replication_role = replica).
 */
export class PgRowApplier {
  private staged = new Set<string>();
  private prepared = false;

  constructor(private readonly client: Client) {}

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    try {
      await this.client.query(`SET session_replication_role = replica`);
    } catch (err) {
      throw classifyPgError(
        err,
        'setting session_replication_role = replica on the destination (needs a superuser, so destination triggers and foreign keys do not fire twice)',
      );
    }
    this.prepared = true;
  }

  private stageName(t: TargetTable): string {
    return `pgferry_stage_${createHash('sha1').update(`${t.schema}\u0000${t.table}`).digest('hex').slice(0, 16)}`;
  }

  async applyRows(
    t: TargetTable,
    rows: ReadonlyArray<ReadonlyArray<string | null>>,
    mark: OffsetMark | null,
  ): Promise<void> {
    await this.prepare();
    const target = quoteQualified(t.schema, t.table);
    const cols = t.columns.map(quoteIdent).join(', ');
    const stage = quoteIdent(this.stageName(t));
    try {
      await this.client.query('BEGIN');
      if (!this.staged.has(stage)) {
        await this.client.query(
          `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
        );
        this.staged.add(stage);
      }
      if (rows.length) {
        const copy = this.client.query(copyFrom(`COPY ${stage} (${cols}) FROM STDIN`));
        await new Promise<void>((resolve, reject) => {
          copy.on('error', reject);
          copy.on('finish', resolve);
          let chunk = '';
          for (const r of rows) {
            chunk += copyLine(r);
            if (chunk.length > 1 << 20) {
              copy.write(chunk);
              chunk = '';
            }
          }
          copy.end(chunk);
        });
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
        await this.client.query(
          `INSERT INTO ${target} (${cols}) OVERRIDING SYSTEM VALUE ${source} ${conflict}`,
        );
      }
      if (mark) await storeOffset(this.client, mark.group, mark.topic, mark.partition, mark.nextOffset);
      await this.client.query('COMMIT');
    } catch (err) {
      await this.client.query('ROLLBACK').catch(() => undefined);
      throw classifyPgError(err, `applying ${rows.length} rows to ${target}`);
    }
  }
}
