import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { classifyPgError, quoteIdent } from '@pgferry/pg';

/**
 * Every applier session runs with session_replication_role = replica, so destination triggers
 * and foreign keys do not fire a second time for rows the source already checked.
 */
export async function setReplicaRole(client: Client): Promise<void> {
  try {
    await client.query('SET session_replication_role = replica');
  } catch (err) {
    throw classifyPgError(
      err,
      'setting session_replication_role = replica on the destination (needs a superuser, so destination triggers and foreign keys do not fire twice)',
    );
  }
}

/** COPY text `chunks` (whole lines) into `table` (already quoted) through its `columns`. */
export async function copyInto(
  client: Client,
  table: string,
  columns: readonly string[],
  chunks: ReadonlyArray<Buffer | string>,
): Promise<void> {
  const copy = client.query(copyFrom(`COPY ${table} (${columns.map(quoteIdent).join(', ')}) FROM STDIN`));
  await new Promise<void>((resolve, reject) => {
    copy.on('error', reject);
    copy.on('finish', resolve);
    for (const c of chunks) copy.write(c);
    copy.end();
  });
}
