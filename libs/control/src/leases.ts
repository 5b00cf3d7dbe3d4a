import type { Client } from 'pg';
import { PgferryError, sleep } from '@pgferry/core';
import { classifyPgError } from '@pgferry/pg';

/**
 * Who holds a role of a task (the stream capture: one streams the slot, the others wait), a row
 * of pgferry.leases in the destination that lapses unless its holder renews it. Taking it is one
 * statement (INSERT ... ON CONFLICT ... WHERE lapsed or mine), so two processes never both hold
 * it; the destination's clock decides when it lapses.
 */
export interface LeaseHolder {
  holder: string;
  expiresAt: Date;
}

/** Takes or renews the lease for `ttlMs`; the current holder when another has it, else null. */
export async function takeLease(
  client: Pick<Client, 'query'>,
  task: string,
  role: string,
  holder: string,
  ttlMs: number,
): Promise<LeaseHolder | null> {
  try {
    const { rows } = await client.query(
      `INSERT INTO pgferry.leases (task, role, holder, expires_at)
       VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
       ON CONFLICT (task, role) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
         taken_at = CASE WHEN pgferry.leases.holder = EXCLUDED.holder THEN pgferry.leases.taken_at ELSE now() END
       WHERE pgferry.leases.expires_at < now() OR pgferry.leases.holder = EXCLUDED.holder
       RETURNING holder`,
      [task, role, holder, ttlMs],
    );
    if (rows.length) return null;
    const current = await client.query(
      `SELECT holder, expires_at FROM pgferry.leases WHERE task = $1 AND role = $2`,
      [task, role],
    );
    const r = current.rows[0];
    return r ? { holder: r.holder, expiresAt: r.expires_at } : null;
  } catch (err) {
    throw classifyPgError(err, `taking the ${role} lease of task ${task} on the destination`);
  }
}

/** Gives the lease up at once (a clean stop), so a waiting process takes over without waiting for it to lapse. */
export async function dropLease(
  client: Pick<Client, 'query'>,
  task: string,
  role: string,
  holder: string,
): Promise<void> {
  await client.query(`DELETE FROM pgferry.leases WHERE task = $1 AND role = $2 AND holder = $3`, [
    task,
    role,
    holder,
  ]);
}

export interface LeaseOptions {
  /** Opens a destination connection for the lease (kept while it is held). */
  connect: () => Promise<Client>;
  task: string;
  role: string;
  /** Names this process in the table and in the waiting line of the others. */
  holder: string;
  /** Lapses this long after the last renewal (default 15 s); renewed every third of it. */
  ttlMs?: number;
  /** Called while another holds it, about every ttl/3. */
  onWait?: (current: LeaseHolder) => void;
  signal?: AbortSignal;
}

/**
 * Runs `fn` while holding the lease: waits until it is free (or lapsed), takes it, renews it in
 * the background, and aborts `fn`'s signal when a renewal finds it taken by another (this
 * process stalled past the ttl) or cannot reach the destination for a whole ttl. Returns fn's
 * result; drops the lease after. Resolves undefined when `signal` aborts while waiting.
 */
export async function withLease<T>(
  opts: LeaseOptions,
  fn: (lost: AbortSignal) => Promise<T>,
): Promise<T | undefined> {
  const ttl = opts.ttlMs ?? 15_000;
  const client = await opts.connect();
  const lost = new AbortController();
  const onStop = () => lost.abort();
  opts.signal?.addEventListener('abort', onStop, { once: true });
  let timer: NodeJS.Timeout | null = null;
  try {
    for (;;) {
      if (opts.signal?.aborted) return undefined;
      const other = await takeLease(client, opts.task, opts.role, opts.holder, ttl);
      if (!other) break;
      opts.onWait?.(other);
      await sleep(ttl / 3, opts.signal);
    }
    let lastRenewal = Date.now();
    timer = setInterval(() => {
      takeLease(client, opts.task, opts.role, opts.holder, ttl).then(
        (other) => {
          if (other)
            lost.abort(
              new PgferryError(`the ${opts.role} lease of task ${opts.task} went to ${other.holder}`),
            );
          else lastRenewal = Date.now();
        },
        () => {
          if (Date.now() - lastRenewal > ttl)
            lost.abort(new PgferryError(`the ${opts.role} lease could not be renewed for ${ttl} ms`));
        },
      );
    }, ttl / 3);
    return await fn(lost.signal);
  } finally {
    if (timer) clearInterval(timer);
    opts.signal?.removeEventListener('abort', onStop);
    await dropLease(client, opts.task, opts.role, opts.holder).catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
