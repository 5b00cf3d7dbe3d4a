import type { Client } from 'pg';
import { DataError } from '@pgferry/core';
import { RecordDecoder, type RegistryClient } from '@pgferry/avro';
import { storeOffset, type OffsetMark } from '@pgferry/control';
import { copyInto, setReplicaRole } from './pg-apply-session';
import type { ApplierTarget } from './applier';
import type { SnapshotCopyDecoder, SnapshotWork } from './snapshot-copy-decoder';
import { classifyPgError, copyChunks, loadRowModule, quoteQualified, type TransformPlan } from '@pgferry/pg';
import { applyRowModule } from './transform-row-module';
import { createStageSql, requirePlannedColumns, stageName, upsertSql } from './transform-sql';

/**
 * Applies snapshot batches of transformed tables: the batch is staged in the source's shape
 * (COPY text, as the snapshot's other tables; with a module, each row first goes through it)
 * and written through the view in one statement (transform-sql.ts), with the batch's offset,
 * in one transaction. Idempotent by key like PgRowApplier's staged way: a re-sent chunk
 * overwrites its rows with the same values. Rows the filter or the module leave out are not
 * written.
 */
export class TransformedSnapshotWriter {
  private readonly decoder: RecordDecoder;
  private readonly prepared = new WeakSet<Client>();

  constructor(
    registry: RegistryClient,
    private readonly copy: SnapshotCopyDecoder,
  ) {
    this.decoder = new RecordDecoder(registry);
  }

  /** Applies `work` of `target` (which has a transform) on `client`; returns the rows staged. */
  async apply(client: Client, target: ApplierTarget, work: SnapshotWork, mark: OffsetMark): Promise<number> {
    const plan = target.transform!;
    const { columns, chunks, rows } = plan.module
      ? await this.moduleRows(plan, work)
      : await this.copy.decodeText(work);
    const dest = quoteQualified(target.schema, target.table);
    if (!this.prepared.has(client)) {
      await setReplicaRole(client);
      this.prepared.add(client);
    }
    try {
      await client.query('BEGIN');
      if (rows > 0 && columns) {
        requirePlannedColumns(plan, columns);
        const stage = stageName(dest, 'snap', columns);
        await client.query(createStageSql(plan, stage));
        await copyInto(client, stage, columns, chunks);
        await client.query(upsertSql(plan, dest, stage, true));
      }
      await storeOffset(client, mark.group, mark.topic, mark.partition, mark.nextOffset);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (err instanceof DataError) throw err;
      throw classifyPgError(err, `applying ${rows} rows to ${dest} through transforms ${plan.table}`);
    }
    return rows;
  }

  /** The batch's rows through the module, as COPY text (the per-row path of module transforms). */
  private async moduleRows(
    plan: TransformPlan,
    work: SnapshotWork,
  ): Promise<{ columns: string[] | null; chunks: Buffer[] | string[]; rows: number }> {
    const fn = loadRowModule(plan);
    const out: Array<Array<string | null>> = [];
    let columns: string[] | null = null;
    for (let i = 0; i < work.bufs.length; i++) {
      const buf = work.bufs[i];
      if (!buf) continue;
      const change = await this.decoder.decode(buf.subarray(work.starts[i], work.ends[i]));
      if (!change.after || (change.op !== 'r' && change.op !== 'c'))
        throw new DataError(
          `Kafka topic ${work.topic} partition ${work.partition} offset ${work.offsets[i]}: unexpected op "${change.op}" in the full-data phase`,
        );
      if (columns && columns.join('\u0000') !== change.columns.join('\u0000'))
        throw new DataError(`the columns of ${plan.table} changed within one batch`);
      columns = change.columns;
      const row = applyRowModule(fn, plan, change.columns, change.after, 'r');
      if (row) out.push(row);
    }
    return { columns, chunks: out.length ? copyChunks(out) : [], rows: out.length };
  }
}
