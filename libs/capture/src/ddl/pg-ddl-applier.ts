import type { Client } from 'pg';
import { DataError, PgferryError, type TaskSpec } from '@pgferry/core';
import { classifyPgError, quoteIdent } from '@pgferry/pg';
import { claimDdl, storeOffset, type OffsetMark } from '@pgferry/control';
import type { DdlEvent } from './pg-ddl-capture';

/**
 * Why a captured statement cannot run on the destination as it is, or null when it can. pgferry
 * does not rewrite SQL, so a statement on a schema or table the task renames is refused rather
 * than run against the wrong (or a missing) object.
 */
export function ddlRefusal(event: DdlEvent, objects: TaskSpec['objects']): string | null {
  for (const [i, inc] of (objects.include ?? []).entries()) {
    if (!event.schemas.includes(inc.schema)) continue;
    if (inc.renameTo && inc.renameTo !== inc.schema)
      return `schema ${quoteIdent(inc.schema)} is renamed to ${quoteIdent(inc.renameTo)} on the destination (objects.include[${i}].renameTo) and pgferry does not rewrite statements`;
    if (inc.renameTables && Object.keys(inc.renameTables).length)
      return `the task renames tables of schema ${quoteIdent(inc.schema)} (objects.include[${i}].renameTables) and pgferry does not rewrite statements`;
  }
  return null;
}

/**
 * Runs one captured DDL statement on the destination with the source session's search_path,
 * and stores the consumed offset in the same transaction, so it runs exactly once. A statement
 * that fails stops the task: the error names the statement, the source transaction and the
 * destination's reason; it is never skipped. Connection failures stay retriable.
 */
export async function applyDdl(
  destination: Client,
  event: DdlEvent,
  objects: TaskSpec['objects'],
  mark: OffsetMark | null,
): Promise<void> {
  await runDdl(destination, event, objects, async () => {
    if (mark) await storeOffset(destination, mark.group, mark.topic, mark.partition, mark.nextOffset);
    return true;
  });
}

/**
 * Runs a statement the change stream carried, once per task: pgferry.ddl_applied records it in
 * the same transaction, so a stream re-delivered after a restart does not run it twice. Returns
 * false when it had run already.
 */
export async function applyDdlOnce(
  destination: Client,
  task: string,
  event: DdlEvent,
  objects: TaskSpec['objects'],
): Promise<boolean> {
  let ran = false;
  await runDdl(destination, event, objects, async () => {
    ran = await claimDdl(destination, task, event.id, event.command);
    return ran;
  });
  return ran;
}

/** BEGIN; `claim` (false: done already, nothing runs); the statement; COMMIT. */
async function runDdl(
  destination: Client,
  event: DdlEvent,
  objects: TaskSpec['objects'],
  claim: () => Promise<boolean>,
): Promise<void> {
  const what = `${event.tag} (source transaction ${event.txid}, statement: ${event.command.trim()})`;
  const refused = ddlRefusal(event, objects);
  if (refused)
    throw new DataError(
      `cannot apply ${what} on the destination: ${refused}; run the equivalent statement on the destination by hand and restart the task`,
    );
  try {
    await destination.query('BEGIN');
    if (await claim()) {
      await destination.query(`SELECT set_config('search_path', $1, true)`, [event.searchPath]);
      await destination.query(event.command);
    }
    await destination.query('COMMIT');
  } catch (err) {
    await destination.query('ROLLBACK').catch(() => undefined);
    const classified = classifyPgError(err, `applying ${what} on the destination`);
    if (classified instanceof PgferryError && classified.retriable) throw classified;
    throw new DataError(
      `cannot apply ${what} on the destination: ${(err as Error).message}; the task stops here and does not skip it: fix the destination so the statement can run, then restart the task`,
      { cause: err },
    );
  }
}
