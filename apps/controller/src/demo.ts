import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  createAllTypes,
  loadPgbenchLike,
  startLocalCluster,
  tableDigest,
  type LocalCluster,
} from '@pgferry/pg';
import { runMigrate } from './migrate-command';

export interface DemoOptions {
  scale: number;
  out: Writable & { isTTY?: boolean };
}

/**
 * The embedded default's main job: two throwaway clusters from the local PostgreSQL binaries,
 * sample data on the source (pgbench-like tables, a mixed-types table, the all-types table),
 * then a real migration through the embedded Kafka broker (precheck, schema, snapshot, applier,
 * post-data), then a comparison of every table on both sides. Everything is removed at the end.
 * Returns the exit code: 0 when every table is equal.
 */
export async function runDemo(options: DemoOptions): Promise<number> {
  const say = (line: string) => options.out.write(`${line}\n`);
  const clusters: LocalCluster[] = [];
  const workDir = mkdtempSync(join(tmpdir(), 'pgferry-demo-'));
  try {
    say('starting source and destination PostgreSQL clusters...');
    const started = await Promise.allSettled([
      startLocalCluster({ logical: true }),
      startLocalCluster({ logical: true }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') clusters.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [source, destination] = clusters;
    say(`  source      127.0.0.1:${source.port}`);
    say(`  destination 127.0.0.1:${destination.port}`);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
    const client = await source.connect('shop');
    const tables: Array<[string, string, string[]]> = [
      ['public', 'pgbench_accounts', ['aid']],
      ['public', 'pgbench_branches', ['bid']],
      ['public', 'pgbench_tellers', ['tid']],
      ['public', 'mixed_rows', ['id']],
      ['types', 'all_types', ['id']],
    ];
    try {
      const started = Date.now();
      await loadPgbenchLike(client, { scale: options.scale, schema: 'public', mixedRows: 20_000 });
      await createAllTypes(client, 'types', 'all_types');
      await client.query('ANALYZE');
      say(
        `loaded sample data (pgbench scale ${options.scale}, 20000 mixed rows, every built-in type) in ${((Date.now() - started) / 1000).toFixed(1)}s`,
      );
    } finally {
      await client.end();
    }
    const { code } = await runMigrate({
      source: source.url('shop'),
      target: destination.url('shop'),
      name: 'demo',
      workDir,
      out: options.out,
    });
    if (code !== 0) return code;
    say('comparing every table on both sides (row count and md5 of the ordered rows):');
    const s = await source.connect('shop');
    const d = await destination.connect('shop');
    let different = 0;
    try {
      for (const [schema, table, key] of tables) {
        const [a, b] = await Promise.all([
          tableDigest(s, schema, table, key),
          tableDigest(d, schema, table, key),
        ]);
        const same = a.count === b.count && a.md5 === b.md5;
        if (!same) different++;
        say(
          `  ${`${schema}.${table}`.padEnd(26)} ${String(a.count).padStart(9)} rows  ${same ? 'equal' : `DIFFERENT (destination ${b.count} rows)`}`,
        );
      }
    } finally {
      await s.end();
      await d.end();
    }
    say(different ? `${different} table(s) differ` : 'all tables equal');
    return different ? 1 : 0;
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    rmSync(workDir, { recursive: true, force: true });
    say('clusters stopped and removed');
  }
}
