import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { readPidFile, tableDigest, waitFor, type PgCluster } from '@pgferry/testing';
import { readTaskStatus } from '../api/task-status';

/** What the incremental specs share: the pgbench tables and helpers over a source and a destination. */

export const PGBENCH: Array<[string, string[]]> = [
  ['pgbench_accounts', ['aid']],
  ['pgbench_tellers', ['tid']],
  ['pgbench_branches', ['bid']],
  // No key: replica identity full; ordered by every column.
  ['pgbench_history', ['tid', 'bid', 'aid', 'delta', 'mtime', 'filler']],
];

/** A connection once the restarted server takes one again. */
export async function reconnected(cluster: PgCluster, database: string): Promise<Client> {
  const c = await waitFor(() => cluster.connect(database).catch(() => null), {
    reason: 'the restarted server to take connections',
    until: (client) => client !== null,
    timeout: 30_000,
  });
  return c!;
}

export async function digests(c: Client, tables: Array<[string, string[]]>) {
  const out: Record<string, { count: number; md5: string }> = {};
  for (const [table, key] of tables) out[table] = await tableDigest(c, 'public', table, key);
  return out;
}

/** Source objects a task leaves behind: slots, publications, event triggers, pgferry tables. */
export async function leftovers(c: Client) {
  const q = async (sql: string) => (await c.query(sql)).rows.map((r) => Object.values(r)[0] as string);
  return {
    slots: await q(`SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgferry%'`),
    publications: await q(`SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgferry%'`),
    triggers: await q(`SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'pgferry%'`),
    tables: await q(
      `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgferry'`,
    ),
  };
}

/**
 * Task helpers over the clusters `env` returns (started in the spec's beforeAll): a task's spec
 * file in `dir`, and its database on both clusters.
 */
export function incrementalTasks(env: () => { source: PgCluster; destination: PgCluster; dir: string }) {
  return {
    /** Writes the spec of an incremental task on database `name` of both clusters; returns its path. */
    taskSpec(name: string, options: Record<string, unknown>): string {
      const { source, destination, dir } = env();
      const file = join(dir, `${name}.json`);
      writeFileSync(
        file,
        JSON.stringify({
          name,
          source: { url: source.url(name) },
          destination: { url: destination.url(name) },
          migrationTypes: { incremental: true },
          options,
        }),
      );
      return file;
    },

    /** Creates database `name` on both clusters and connects to each. */
    async taskDatabases(name: string): Promise<{ s: Client; d: Client }> {
      const { source, destination } = env();
      await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
      return { s: await source.connect(name), d: await destination.connect(name) };
    },
  };
}

/**
 * Once the stream has applied 500 more changes, kills a child process of the task with
 * SIGKILL and waits until its supervisor has started it again.
 */
export async function killWhileStreaming(
  d: Client,
  name: string,
  workDir: string,
  out: { text(): string },
  child: 'capture' | 'applier',
): Promise<void> {
  const before = (await readTaskStatus(d, name))!.stream!.appliedRecords;
  await waitFor(async () => (await readTaskStatus(d, name))!.stream!.appliedRecords, {
    reason: `changes to be applied before killing the ${child}`,
    until: (n) => n > before + 500,
    timeout: 60_000,
  });
  const pid = readPidFile(join(workDir, `${child}.pid`));
  expect(pid).not.toBeNull();
  process.kill(pid!, 'SIGKILL');
  await waitFor(() => out.text(), {
    reason: `the ${child} to be restarted`,
    until: (t) => t.includes(`${child.padEnd(12)} pid ${pid} was killed by SIGKILL; restart 1`),
    timeout: 30_000,
  });
}

/**
 * Runs `round(i)` for i = 1, 2, ... on the source, `pauseMs` apart (the pause paces the load; it
 * waits for nothing), until `stop()`; `writes` counts the rounds done so far.
 */
export function startSourceWriter(
  round: (i: number) => Promise<unknown>,
  pauseMs: number,
): { readonly writes: number; stop(): Promise<void> } {
  let writing = true;
  let writes = 0;
  const done = (async () => {
    for (let i = 1; writing; i++) {
      await round(i);
      writes = i;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return {
    get writes() {
      return writes;
    },
    async stop() {
      writing = false;
      await done;
    },
  };
}

/**
 * Keeps changing `items (id, v, n)` on the source, every 100 ms an UPDATE of a fiftieth of the
 * rows and an INSERT of a new one, until `stop()`; `writes` counts the rounds done so far.
 */
export function startItemsWriter(s: Client): { readonly writes: number; stop(): Promise<void> } {
  return startSourceWriter(async (i) => {
    await s.query(`UPDATE items SET n = n + 1, v = 'w' || $1 WHERE id % 50 = $1 % 50`, [i]);
    await s.query(`INSERT INTO items VALUES ($1, 'new', $1)`, [10_000 + i]);
  }, 100);
}
