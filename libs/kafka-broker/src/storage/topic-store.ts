import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '@pgferry/core';
import { PartitionLog } from './partition-log';
import { configOverrides, parseTopicConfig, type TopicConfig } from './topic-config';
import { compactPartition } from './compactor';

export interface Topic {
  name: string;
  config: TopicConfig;
  partitions: PartitionLog[];
}

export type TopicResult =
  | { ok: true }
  | {
      ok: false;
      code: 'exists' | 'invalid-name' | 'invalid-partitions' | 'invalid-config' | 'unknown';
      message: string;
    };

const LEGAL = /^[a-zA-Z0-9._-]{1,249}$/;

export function validateTopicName(name: string): string | null {
  if (!LEGAL.test(name))
    return `topic name ${JSON.stringify(name)} is illegal: use 1 to 249 of a-z A-Z 0-9 . _ -`;
  if (name === '.' || name === '..') return `topic name ${name} is illegal`;
  return null;
}

/**
 * Topics and their partition logs under `<dataDir>/logs/<topic>-<partition>`, with the topic
 * list and per-topic config overrides in `<dataDir>/topics.json` (replaced atomically).
 */
export class TopicStore {
  readonly topics = new Map<string, Topic>();
  private readonly metaPath: string;

  constructor(private readonly dataDir: string) {
    mkdirSync(join(dataDir, 'logs'), { recursive: true, mode: PRIVATE_DIR_MODE });
    this.metaPath = join(dataDir, 'topics.json');
    if (existsSync(this.metaPath)) {
      const meta = JSON.parse(readFileSync(this.metaPath, 'utf8')) as Record<
        string,
        { partitions: number; configs: Record<string, string> }
      >;
      for (const [name, t] of Object.entries(meta)) {
        const config = parseTopicConfig(Object.entries(t.configs).map(([k, v]) => ({ name: k, value: v })));
        if ('error' in config) throw new Error(`${this.metaPath}: topic ${name}: ${config.error}`);
        const partitions = Array.from(
          { length: t.partitions },
          (_, p) => new PartitionLog(this.partitionDir(name, p), config),
        );
        this.topics.set(name, { name, config, partitions });
      }
    }
  }

  private partitionDir(name: string, p: number): string {
    return join(this.dataDir, 'logs', `${name}-${p}`);
  }

  private save(): void {
    const meta: Record<string, { partitions: number; configs: Record<string, string> }> = {};
    for (const t of this.topics.values())
      meta[t.name] = { partitions: t.partitions.length, configs: configOverrides(t.config) };
    writeFileSync(`${this.metaPath}.tmp`, JSON.stringify(meta, null, 1), { mode: PRIVATE_FILE_MODE });
    renameSync(`${this.metaPath}.tmp`, this.metaPath);
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  partition(name: string, p: number): PartitionLog | undefined {
    return this.topics.get(name)?.partitions[p];
  }

  create(
    name: string,
    partitions: number,
    configs: Array<{ name: string; value: string | null }>,
    validateOnly = false,
  ): TopicResult {
    const bad = validateTopicName(name);
    if (bad) return { ok: false, code: 'invalid-name', message: bad };
    if (this.topics.has(name)) return { ok: false, code: 'exists', message: `topic ${name} already exists` };
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 10000) {
      return {
        ok: false,
        code: 'invalid-partitions',
        message: `number of partitions must be 1 to 10000, got ${partitions}`,
      };
    }
    const config = parseTopicConfig(configs);
    if ('error' in config) return { ok: false, code: 'invalid-config', message: config.error };
    if (validateOnly) return { ok: true };
    const logs = Array.from(
      { length: partitions },
      (_, p) => new PartitionLog(this.partitionDir(name, p), config),
    );
    this.topics.set(name, { name, config, partitions: logs });
    this.save();
    return { ok: true };
  }

  delete(name: string): TopicResult {
    const t = this.topics.get(name);
    if (!t) return { ok: false, code: 'unknown', message: `topic ${name} does not exist` };
    this.topics.delete(name);
    this.save();
    for (const p of t.partitions) p.destroy();
    return { ok: true };
  }

  addPartitions(name: string, count: number, validateOnly = false): TopicResult {
    const t = this.topics.get(name);
    if (!t) return { ok: false, code: 'unknown', message: `topic ${name} does not exist` };
    if (!Number.isInteger(count) || count <= t.partitions.length || count > 10000) {
      return {
        ok: false,
        code: 'invalid-partitions',
        message: `topic ${name} has ${t.partitions.length} partitions; the new count must be larger, got ${count}`,
      };
    }
    if (validateOnly) return { ok: true };
    for (let p = t.partitions.length; p < count; p++)
      t.partitions.push(new PartitionLog(this.partitionDir(name, p), t.config));
    this.save();
    return { ok: true };
  }

  /** Retention and compaction over every partition; called on an interval. */
  clean(now = Date.now()): void {
    for (const t of this.topics.values()) {
      for (const p of t.partitions) {
        p.applyRetention(now);
        if (t.config.cleanupPolicy.includes('compact')) compactPartition(p, now);
      }
    }
  }

  async flushAll(): Promise<void> {
    await Promise.all([...this.topics.values()].flatMap((t) => t.partitions.map((p) => p.flush())));
  }

  close(): void {
    for (const t of this.topics.values()) for (const p of t.partitions) p.close();
  }
}
