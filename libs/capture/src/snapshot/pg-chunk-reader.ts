import type { Client } from 'pg';
import { ObjectError } from '@pgferry/core';
import { classifyPgError, quoteIdent, quoteLiteral, quoteQualified, CopyOutQuery } from '@pgferry/pg';
import type { CopyRows } from '@pgferry/pg';
import { chunkPredicate, type ChunkPlan } from './chunk-plan';

/**
 * Reads one chunk as COPY text rows under the exported (or a fresh) snapshot, in one
 * REPEATABLE READ READ ONLY transaction. `onBatch` receives whole rows (without the newline), as
 * byte ranges valid until the chunk ends, in batches of about `batchRows`; the socket is not
 * read while `onBatch` runs, so memory stays bounded by one batch when Kafka is slower than the
 * database (back-pressure). A rejected `onBatch` fails the chunk with its error. `where` is the
 * table's row filter (objects.include[].where), validated by the precheck as one expression.
 * `beforeQuery` is awaited before each statement sent to the source (the full load's
 * queries-per-second limit).
 */
export async function readChunk(
  client: Client,
  plan: ChunkPlan,
  columns: string[],
  snapshotName: string | null,
  onBatch: (rows: CopyRows, bytes: number) => Promise<void>,
  batchRows = 2000,
  where?: string,
  beforeQuery: () => Promise<void> = async () => undefined,
): Promise<{ rows: number; bytes: number }> {
  const context = `reading ${quoteQualified(plan.readSchema, plan.readTable)} pages ${plan.loPage}..${plan.hiPage ?? 'end'}`;
  try {
    await beforeQuery();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    if (snapshotName) await beforeQuery().then(() => importSnapshot(client, snapshotName));
    await beforeQuery();
    const sql = `COPY (SELECT ${columns.map(quoteIdent).join(', ')} FROM ONLY ${quoteQualified(plan.readSchema, plan.readTable)} WHERE ${chunkPredicate(plan)}${where ? ` AND (${where})` : ''}) TO STDOUT`;
    const copy = client.query(new CopyOutQuery(sql, (rows) => onBatch(rows, rows.bytes), batchRows));
    const result = await copy.done;
    await beforeQuery();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, context);
  }
}

/**
 * SET TRANSACTION SNAPSHOT of the full load's exported snapshot, in a transaction begun
 * REPEATABLE READ. The snapshot lives only while the replication connection that exported it
 * is open: a source restart (or that connection lost) during the load ends it, and no later
 * read can be under it. That is a SnapshotLostError saying how to go on.
 */
export async function importSnapshot(client: Client, snapshotName: string): Promise<void> {
  try {
    await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshotName)}`);
  } catch (err) {
    // 22023 invalid_parameter_value: "invalid snapshot identifier" (no such exported snapshot).
    if ((err as { code?: string }).code === '22023') throw new SnapshotLostError(snapshotName, err);
    throw err;
  }
}

/**
 * The full load's exported snapshot is gone. The chunks done so far were read under it; the
 * rest cannot be. Not retriable: the task must be run again, which reads the chunks not done
 * under fresh snapshots.
 */
export class SnapshotLostError extends ObjectError {
  constructor(snapshotName: string, cause: unknown) {
    super(
      `the full load's exported snapshot ${snapshotName} is gone: the source restarted, or the connection that exported it was lost, while the load ran. ` +
        'Run pgferry migrate again: it reads the chunks not done yet under fresh snapshots. For an incremental task that stays consistent: ' +
        'the slot streams every change made since the first snapshot, which the applier applies by key on top of the rows read later, so every keyed table converges to the source; ' +
        'a keyless table can get rows twice (to load every table under one snapshot instead: pgferry release, drop the destination tables, and migrate again)',
      { cause, code: 'SNAPSHOT_LOST' },
    );
  }
}
