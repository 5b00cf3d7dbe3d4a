import type { Client } from 'pg';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified, CopyOutQuery } from '@pgferry/pg';
import type { CopyRows } from '@pgferry/pg';
import { chunkPredicate, type ChunkPlan } from './chunk-plan';

/**
 * Reads one chunk as COPY text rows under the exported (or a fresh) snapshot, in one
 * REPEATABLE READ READ ONLY transaction. `onBatch` receives whole rows (without the newline), as
 * byte ranges valid until the chunk ends, in batches of about `batchRows`; the socket is not
 * read while `onBatch` runs, so memory stays bounded by one batch when Kafka is slower than the
 * database (back-pressure). A rejected `onBatch` fails the chunk with its error.
 */
export async function readChunk(
  client: Client,
  plan: ChunkPlan,
  columns: string[],
  snapshotName: string | null,
  onBatch: (rows: CopyRows, bytes: number) => Promise<void>,
  batchRows = 2000,
): Promise<{ rows: number; bytes: number }> {
  const context = `reading ${quoteQualified(plan.readSchema, plan.readTable)} pages ${plan.loPage}..${plan.hiPage ?? 'end'}`;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (snapshotName) await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshotName)}`);
    const sql = `COPY (SELECT ${columns.map(quoteIdent).join(', ')} FROM ONLY ${quoteQualified(plan.readSchema, plan.readTable)} WHERE ${chunkPredicate(plan)}) TO STDOUT`;
    const copy = client.query(new CopyOutQuery(sql, (rows) => onBatch(rows, rows.bytes), batchRows));
    const result = await copy.done;
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, context);
  }
}
