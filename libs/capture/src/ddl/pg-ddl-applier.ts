import type { Client } from 'pg';
import { DataError, PgferryError, type TaskSpec } from '@pgferry/core';
import { classifyPgError, quoteIdent } from '@pgferry/pg';
import { claimDdl, ddlAppliedByHandSql, storeOffset, type OffsetMark } from '@pgferry/control';
import type { DdlEvent } from './pg-ddl-capture';
import { capturedStatement } from './pg-ddl-splitter';

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
 * Where a captured statement runs on the destination. `role`: a role the statement runs as (SET
 * LOCAL ROLE, for its transaction only), one with rights on the migrated schemas and nothing
 * else, so a statement can change nothing beyond them (options.schemaChanges.role). The
 * session's own role claims the statement in the control schema first.
 */
export interface DdlTarget {
  objects: TaskSpec['objects'];
  role?: string;
}

/**
 * Runs one captured DDL statement on the destination and stores the consumed offset in the
 * same transaction, so it runs exactly once (see runDdl). A refused statement leaves the
 * offset where it was: the caller moves its consumer past it once it was applied by hand.
 */
export async function applyDdl(
  destination: Client,
  event: DdlEvent,
  target: DdlTarget,
  mark: OffsetMark | null,
): Promise<void> {
  const hint =
    'apply it by hand on the destination, then move the applier past its record and restart the task';
  await runDdl(destination, event, target, hint, async () => {
    if (mark) await storeOffset(destination, mark.group, mark.topic, mark.partition, mark.nextOffset);
    return true;
  });
}

/**
 * Runs a statement the change stream carried, once per task: pgferry.ddl_applied records it in
 * the same transaction, so a stream re-delivered after a restart does not run it twice, and a
 * statement recorded there by hand is passed over. Returns false when it had run already.
 */
export async function applyDdlOnce(
  destination: Client,
  task: string,
  event: DdlEvent,
  target: DdlTarget,
): Promise<boolean> {
  let ran = false;
  const hint = `apply it by hand on the destination, then record it as applied there with \`${ddlAppliedByHandSql(task, event.id)}\` and restart the task`;
  await runDdl(destination, event, target, hint, async (statement) => {
    ran = await claimDdl(destination, task, event.id, statement);
    return ran;
  });
  return ran;
}

/**
 * BEGIN; `claim` (false: done already, nothing runs); the statement of the captured query
 * string the trigger reported (pg-ddl-splitter.ts), never the rest of the string, with the
 * source session's resolved search_path and as `target.role`; COMMIT. A statement that
 * cannot be told apart from the rest of its string, or would run against renamed objects,
 * stops the task with the statement and `hint` (how to go on). A statement that fails stops
 * the task: the error names the statement, the source transaction and the destination's
 * reason; it is never skipped. Connection failures stay retriable.
 */
async function runDdl(
  destination: Client,
  event: DdlEvent,
  target: DdlTarget,
  hint: string,
  claim: (statement: string) => Promise<boolean>,
): Promise<void> {
  const renamed = ddlRefusal(event, target.objects);
  const split = renamed ? null : await capturedStatement(event);
  const refusal = renamed ?? (split && 'refusal' in split ? split.refusal : null);
  const statement = split && 'statement' in split ? split.statement : event.command.trim();
  const what = `${event.tag} (source transaction ${event.txid}, statement: ${statement})`;
  let refused: DataError | null = null;
  try {
    await destination.query('BEGIN');
    if (await claim(statement)) {
      if (refusal) refused = new DataError(`cannot apply ${what} on the destination: ${refusal}; ${hint}`);
      else {
        if (target.role) await destination.query(`SET LOCAL ROLE ${quoteIdent(target.role)}`);
        await destination.query(`SELECT set_config('search_path', $1, true)`, [event.searchPath]);
        await destination.query(statement);
      }
    }
    await destination.query(refused ? 'ROLLBACK' : 'COMMIT');
  } catch (err) {
    await destination.query('ROLLBACK').catch(() => undefined);
    const classified = classifyPgError(err, `applying ${what} on the destination`);
    if (classified instanceof PgferryError && classified.retriable) throw classified;
    throw new DataError(
      `cannot apply ${what} on the destination: ${(err as Error).message}; the task stops here and does not skip it: fix the destination so the statement can run, then restart the task`,
      { cause: err },
    );
  }
  if (refused) throw refused;
}
