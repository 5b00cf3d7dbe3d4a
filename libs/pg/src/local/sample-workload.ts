import type { Client } from 'pg';
import { quoteIdent } from '../ident';

export interface SampleWorkloadOptions {
  /** Opens one writer's connection; the workload ends every connection it opened. */
  connect: () => Promise<Client>;
  /** Client connections writing at the same time (default 4). */
  writers?: number;
  /**
   * Transactions per second over all writers (default 200): each writer paces its share and
   * skips the slots it missed rather than bursting to catch up, so the rate is a ceiling.
   */
  rate?: number;
  /** loadPgbenchLike's schema, scale and mixedRows: the tables written to. */
  schema?: string;
  scale: number;
  /** Rows loadPgbenchLike put in mixed_rows; 0 or absent: mixed_rows is not written to. */
  mixedRows?: number;
  /** Every `mixedEvery`-th transaction of a writer changes mixed_rows instead of TPC-B (default 4). */
  mixedEvery?: number;
}

/** Committed transactions (a transaction counts once its COMMIT returned). */
export interface WorkloadCounts {
  /** pgbench's TPC-B-like transactions: one pgbench_history row each. */
  tpcb: number;
  /** mixed_rows transactions: one insert, one update and one delete each. */
  mixed: number;
}

export interface SampleWorkload {
  /** What has committed so far. */
  counts(): WorkloadCounts;
  /** The error that stopped the writers (one writer's failure stops them all), or null. */
  failure(): Error | null;
  /**
   * Starts no new transaction; resolves once every writer's transaction in flight has ended and
   * its connection is closed, with the final counts. Idempotent.
   */
  stop(): Promise<WorkloadCounts>;
}

/**
 * Writes to the tables of loadPgbenchLike from `writers` connections at a steady rate, as an
 * application would while it is being migrated: pgbench's TPC-B-like transaction (UPDATE
 * accounts, SELECT, UPDATE tellers, UPDATE branches, INSERT history) and, every `mixedEvery`-th
 * transaction, one on mixed_rows (an UPDATE, a DELETE and an INSERT of a new id). Each
 * transaction is one simple query, so it commits whole or not at all. Rows are locked in one
 * order (accounts, tellers, branches; mixed_rows by ascending id), so writers never deadlock.
 * Resolves once every writer is connected.
 */
export async function startSampleWorkload(options: SampleWorkloadOptions): Promise<SampleWorkload> {
  const writers = options.writers ?? 4;
  const rate = options.rate ?? 200;
  if (!Number.isInteger(writers) || writers < 1)
    throw new RangeError(`writers must be a whole number of at least 1, not ${writers}`);
  if (!(rate > 0)) throw new RangeError(`rate must be a positive number of transactions/s, not ${rate}`);
  const s = quoteIdent(options.schema ?? 'public');
  const accounts = options.scale * 100_000;
  const tellers = options.scale * 10;
  const mixedRows = options.mixedRows ?? 0;
  const mixedEvery = options.mixedEvery ?? 4;
  const counts: WorkloadCounts = { tpcb: 0, mixed: 0 };
  let failed: Error | null = null;
  let stopping = false;
  const wake = new Set<() => void>();
  const pick = (n: number) => 1 + Math.floor(Math.random() * n);

  const tpcb = (): string => {
    const aid = pick(accounts);
    const tid = pick(tellers);
    const bid = pick(options.scale);
    const delta = pick(10_001) - 5001;
    return `UPDATE ${s}.pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};
      SELECT abalance FROM ${s}.pgbench_accounts WHERE aid = ${aid};
      UPDATE ${s}.pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};
      UPDATE ${s}.pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};
      INSERT INTO ${s}.pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP)`;
  };
  const mixed = (newId: number): string => {
    const [low, high] = [pick(mixedRows), pick(mixedRows)].sort((a, b) => a - b);
    return `UPDATE ${s}.mixed_rows SET amount = amount + 1, doc = doc || '{"updated": true}', ratio = ratio * 2 WHERE id = ${low};
      DELETE FROM ${s}.mixed_rows WHERE id = ${high} AND id <> ${low};
      INSERT INTO ${s}.mixed_rows
      SELECT g, 'name ' || g, (g * 1.37)::numeric(14,2), jsonb_build_object('g', g, 'new', true),
             now(), md5(g::text)::uuid, decode(md5(g::text), 'hex'), ARRAY['n' || (g % 10)], g / 3.0
        FROM (VALUES (${newId}::bigint)) v(g)`;
  };
  const sleepUntil = (at: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, at - Date.now()));
      wake.add(done);
    });

  const opened = await Promise.allSettled(Array.from({ length: writers }, () => options.connect()));
  const clients = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const refused = opened.find((o) => o.status === 'rejected');
  if (refused) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    throw refused.reason;
  }
  const interval = (1000 * writers) / rate;
  const loops = clients.map(async (client, writer) => {
    // New mixed_rows ids: above the loaded ones, interleaved so that writers never collide.
    let nextId = mixedRows + 1 + writer;
    let next = Date.now() + (interval * writer) / writers;
    try {
      for (let n = 1; !stopping && !failed; n++) {
        await sleepUntil(next);
        if (stopping) break;
        next = Math.max(next + interval, Date.now());
        if (mixedRows > 0 && n % mixedEvery === 0) {
          await client.query(mixed(nextId));
          nextId += writers;
          counts.mixed++;
        } else {
          await client.query(tpcb());
          counts.tpcb++;
        }
      }
    } catch (err) {
      failed ??= err as Error;
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  let stopped: Promise<WorkloadCounts> | null = null;
  return {
    counts: () => ({ ...counts }),
    failure: () => failed,
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        for (const w of [...wake]) w();
        await Promise.all(loops);
        return { ...counts };
      })();
      return stopped;
    },
  };
}
