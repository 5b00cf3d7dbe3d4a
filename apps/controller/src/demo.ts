import type { Writable } from 'node:stream';
import { createAllTypes, loadPgbenchLike, startPostgres, type PgCluster } from '@pgferry/testing';
import { formatCheckReport, runBasicChecks } from './check';

export interface DemoOptions {
  scale: number;
  out: Writable;
}

/**
 * The embedded default's main job as far as it exists: two throwaway clusters from the local
 * PostgreSQL binaries, sample data on the source (pgbench-like tables and the all-types table),
 * then the checks a migration starts with. Both clusters are removed at the end, whatever happens.
 * Returns the process exit code: 1 when a check failed.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const say = (line: string) => options.out.write(`${line}\n`);
  const clusters: PgCluster[] = [];
  try {
    say('starting source and destination PostgreSQL clusters...');
    const [source, destination] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres({ logical: true }),
    ]);
    clusters.push(source, destination);
    say(`  source      127.0.0.1:${source.port}`);
    say(`  destination 127.0.0.1:${destination.port}`);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
    const client = await source.connect('shop');
    try {
      const started = Date.now();
      await loadPgbenchLike(client, { scale: options.scale, schema: 'public', mixedRows: 10_000 });
      await createAllTypes(client, 'types', 'all_types');
      const { rows } = await client.query(
        `SELECT n.nspname || '.' || c.relname AS name, c.reltuples::bigint AS rows, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname IN ('public', 'types') ORDER BY 1`,
      );
      say(`loaded sample data in ${((Date.now() - started) / 1000).toFixed(1)}s:`);
      for (const r of rows)
        say(
          `  ${String(r.name).padEnd(28)} ${String(Math.max(0, Number(r.rows))).padStart(9)} rows  ${r.size}`,
        );
    } finally {
      await client.end();
    }
    say('precheck:');
    const items = await runBasicChecks({
      source: { url: source.url('shop') },
      destination: { url: destination.url('shop') },
      incremental: true,
    });
    say(formatCheckReport(items));
    const failed = items.filter((i) => i.level === 'failed').length;
    say(failed ? `${failed} check(s) failed` : 'all checks passed');
    return failed ? 1 : 0;
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    say('clusters stopped and removed');
  }
}
