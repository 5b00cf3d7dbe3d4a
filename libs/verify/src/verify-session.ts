import type { Client } from 'pg';
import { classifyPgError, quoteLiteral } from '@pgferry/pg';
import { HASH_PROBE_SQL, HASH_PROBES, type ChecksumKind } from './verify-plan';

/**
 * 'hash' when both servers hash HASH_PROBES to the same values (same byte order, encoding and
 * function), else 'md5'. Runs before any transaction is opened: a failing probe (a server
 * without hashtextextended, or an encoding that cannot hold a probe) only means md5.
 */
export async function chooseChecksum(source: Client, destination: Client): Promise<ChecksumKind> {
  const probe = (c: Client) =>
    c.query(HASH_PROBE_SQL, [HASH_PROBES]).then(
      (r) => r.rows[0].h as string,
      () => null,
    );
  const [a, b] = await Promise.all([probe(source), probe(destination)]);
  return a !== null && a === b ? 'hash' : 'md5';
}

/** Opens a read-only transaction on the source under the exported snapshot `name`. */
export async function importSnapshot(source: Client, name: string): Promise<void> {
  await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(name)}`);
  } catch (err) {
    await source.query('ROLLBACK').catch(() => undefined);
    throw classifyPgError(err, `importing snapshot ${name} on the source for verify`);
  }
}

/** Sets `settings` for the session; returns the function that puts the old values back. */
export async function pinSettings(
  client: Client,
  side: string,
  settings: ReadonlyArray<readonly [string, string]>,
): Promise<() => Promise<void>> {
  const names = settings.map(([n]) => n);
  const values = settings.map(([, v]) => v);
  const apply = (vs: string[]) =>
    client.query('SELECT set_config(n, v, false) FROM unnest($1::text[], $2::text[]) AS s(n, v)', [
      names,
      vs,
    ]);
  try {
    const { rows } = await client.query({
      text: 'SELECT current_setting(n) FROM unnest($1::text[]) WITH ORDINALITY AS s(n, i) ORDER BY i',
      values: [names],
      rowMode: 'array',
    });
    const old = (rows as string[][]).map((r) => r[0]);
    await apply(values);
    return async () => void (await apply(old));
  } catch (err) {
    throw classifyPgError(err, `setting the verify session settings on the ${side}`);
  }
}
