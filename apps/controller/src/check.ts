import type { Client } from 'pg';
import { describeError, type EndpointSpec } from '@pgferry/core';
import {
  connect,
  describeEndpoint,
  listTables,
  logicalSourceIssues,
  readServerInfo,
  resolveEndpoint,
  quoteQualified,
} from '@pgferry/pg';

export type ItemLevel = 'passed' | 'failed' | 'alert';

export interface CheckItem {
  item: string;
  level: ItemLevel;
  message: string;
}

export interface CheckOptions {
  source: EndpointSpec;
  destination: EndpointSpec;
  incremental: boolean;
}

/**
 * The checks that need no task state: both servers reachable with the given credentials, the
 * destination's major version not older than the source's, logical decoding ready on the source
 * when incremental is wanted, and a key (or replica identity full) on every source table.
 * Read-only on both servers. Every item names the object and the fix.
 */
export async function runBasicChecks(options: CheckOptions): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const src = resolveEndpoint(options.source, 'source');
  const dst = resolveEndpoint(options.destination, 'destination');
  let source: Client | undefined;
  let destination: Client | undefined;
  try {
    for (const [role, ep] of [
      ['source', src],
      ['destination', dst],
    ] as const) {
      try {
        const client = await connect(ep, role, { applicationName: 'pgferry check' });
        if (role === 'source') source = client;
        else destination = client;
        items.push({
          item: `${role} connectivity`,
          level: 'passed',
          message: `connected to ${describeEndpoint(ep)}`,
        });
      } catch (err) {
        items.push({ item: `${role} connectivity`, level: 'failed', message: describeError(err) });
      }
    }
    if (!source || !destination) return items;
    const [si, di] = await Promise.all([
      readServerInfo(source, 'source'),
      readServerInfo(destination, 'destination'),
    ]);
    items.push(
      di.major >= si.major
        ? {
            item: 'versions',
            level: 'passed',
            message: `source PostgreSQL ${si.version}, destination PostgreSQL ${di.version}`,
          }
        : {
            item: 'versions',
            level: 'failed',
            message: `destination runs PostgreSQL ${di.version}, older than the source's ${si.version}; use a destination of major version ${si.major} or later`,
          },
    );
    if (options.incremental) {
      const issues = logicalSourceIssues(si, 'source');
      if (issues.length === 0)
        items.push({
          item: 'logical decoding',
          level: 'passed',
          message: 'wal_level = logical, a free slot and wal sender, REPLICATION privilege',
        });
      for (const i of issues) items.push({ item: i.item, level: i.level, message: i.message });
    }
    const tables = await listTables(source, 'listing source tables');
    let keyless = 0;
    for (const t of tables) {
      if (t.primaryKey.length || t.uniqueNotNullKey.length || t.replicaIdentity === 'f') continue;
      keyless++;
      const name = quoteQualified(t.schema, t.table);
      items.push({
        item: 'primary key',
        level: 'alert',
        message: `${name} has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows; add a primary key, or run ALTER TABLE ${name} REPLICA IDENTITY FULL`,
      });
    }
    if (keyless === 0)
      items.push({
        item: 'primary key',
        level: 'passed',
        message: `all ${tables.length} source tables have a key`,
      });
    return items;
  } finally {
    await source?.end().catch(() => undefined);
    await destination?.end().catch(() => undefined);
  }
}

export function formatCheckReport(items: CheckItem[]): string {
  const mark: Record<ItemLevel, string> = { passed: 'passed', failed: 'FAILED', alert: 'alert ' };
  return items.map((i) => `  ${mark[i.level]}  ${i.item}: ${i.message}`).join('\n');
}
