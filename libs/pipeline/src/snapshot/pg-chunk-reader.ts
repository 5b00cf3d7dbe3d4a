import type { Client } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified } from '@pgferry/pg';
import { chunkPredicate, type ChunkPlan } from './chunk-plan';

/**
 * Reads one chunk as COPY text lines under the exported (or a fresh) snapshot, in one
 * REPEATABLE READ READ ONLY transaction. `onBatch` receives complete lines (without the
 * newline) in batches; the stream is paused while `onBatch` runs, so memory stays bounded by
 * one batch when Kafka is slower than the database (back-pressure).
 */
export async function readChunk(
  client: Client,
  plan: ChunkPlan,
  columns: string[],
  snapshotName: string | null,
  onBatch: (lines: Buffer[], bytes: number) => Promise<void>,
  batchRows = 2000,
): Promise<{ rows: number; bytes: number }> {
  const context = `reading ${quoteQualified(plan.readSchema, plan.readTable)} pages ${plan.loPage}..${plan.hiPage ?? 'end'}`;
  let rows = 0;
  let bytes = 0;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (snapshotName) await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshotName)}`);
    const sql = `COPY (SELECT ${columns.map(quoteIdent).join(', ')} FROM ONLY ${quoteQualified(plan.readSchema, plan.readTable)} WHERE ${chunkPredicate(plan)}) TO STDOUT`;
    const stream = client.query(copyTo(sql));
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let rest: Buffer | null = null;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const data: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (let nl = data.indexOf(10, start); nl >= 0; nl = data.indexOf(10, start)) {
        pending.push(data.subarray(start, nl));
        pendingBytes += nl - start + 1;
        start = nl + 1;
      }
      rest = start < data.length ? Buffer.from(data.subarray(start)) : null;
      if (pending.length >= batchRows) {
        rows += pending.length;
        bytes += pendingBytes;
        const batch = pending;
        const size = pendingBytes;
        pending = [];
        pendingBytes = 0;
        await onBatch(batch, size);
      }
    }
    if (pending.length) {
      rows += pending.length;
      bytes += pendingBytes;
      await onBatch(pending, pendingBytes);
    }
    await client.query('COMMIT');
    return { rows, bytes };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, context);
  }
}
