/**
 * The per-topic settings the broker implements, with Kafka's names and defaults (except
 * segment.bytes: 64 MiB instead of 1 GiB, since this is a single-node embedded broker).
 */
export interface TopicConfig {
  cleanupPolicy: string[];
  retentionMs: number;
  retentionBytes: number;
  segmentBytes: number;
  segmentMs: number;
  maxMessageBytes: number;
  deleteRetentionMs: number;
  minCleanableDirtyRatio: number;
}

export const DEFAULT_TOPIC_CONFIG: TopicConfig = {
  cleanupPolicy: ['delete'],
  retentionMs: 7 * 24 * 3600 * 1000,
  retentionBytes: -1,
  segmentBytes: 64 * 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  maxMessageBytes: 1048588,
  deleteRetentionMs: 24 * 3600 * 1000,
  minCleanableDirtyRatio: 0.5,
};

interface ConfigDef {
  key: keyof TopicConfig;
  parse: (v: string) => TopicConfig[keyof TopicConfig] | undefined;
  format: (v: TopicConfig[keyof TopicConfig]) => string;
  type: number;
  doc: string;
}

const long = (min: number) => (v: string) => (/^-?\d+$/.test(v) && Number(v) >= min ? Number(v) : undefined);
const num = (v: unknown) => String(v);

/** Kafka config type ids for DescribeConfigs v3: 1 boolean, 2 string, 3 int, 4 short, 5 long, 6 double, 7 list. */
export const TOPIC_CONFIG_DEFS: Record<string, ConfigDef> = {
  'cleanup.policy': {
    key: 'cleanupPolicy',
    parse: (v) => {
      const parts = v.split(',').map((s) => s.trim());
      return parts.length && parts.every((p) => p === 'delete' || p === 'compact') ? parts : undefined;
    },
    format: (v) => (v as string[]).join(','),
    type: 7,
    doc: 'delete: drop old segments by retention; compact: keep the latest record per key',
  },
  'retention.ms': {
    key: 'retentionMs',
    parse: long(-1),
    format: num,
    type: 5,
    doc: 'how long closed segments are kept; -1 forever',
  },
  'retention.bytes': {
    key: 'retentionBytes',
    parse: long(-1),
    format: num,
    type: 5,
    doc: 'maximum partition size before the oldest segments go; -1 unbounded',
  },
  'segment.bytes': {
    key: 'segmentBytes',
    parse: long(14),
    format: num,
    type: 3,
    doc: 'segment file size at which a new segment starts',
  },
  'segment.ms': {
    key: 'segmentMs',
    parse: long(1),
    format: num,
    type: 5,
    doc: 'age at which a new segment starts',
  },
  'max.message.bytes': {
    key: 'maxMessageBytes',
    parse: long(0),
    format: num,
    type: 3,
    doc: 'largest record batch accepted',
  },
  'delete.retention.ms': {
    key: 'deleteRetentionMs',
    parse: long(0),
    format: num,
    type: 5,
    doc: 'how long tombstones survive compaction',
  },
  'min.cleanable.dirty.ratio': {
    key: 'minCleanableDirtyRatio',
    parse: (v) => (Number.isFinite(Number(v)) && Number(v) >= 0 && Number(v) <= 1 ? Number(v) : undefined),
    format: num,
    type: 6,
    doc: 'share of duplicate keys in closed segments that triggers compaction',
  },
};

/** Applies name/value pairs over the defaults; returns the config or the first invalid entry. */
export function parseTopicConfig(
  entries: Array<{ name: string; value: string | null }>,
  base: TopicConfig = DEFAULT_TOPIC_CONFIG,
): TopicConfig | { error: string } {
  const out: TopicConfig = { ...base };
  for (const { name, value } of entries) {
    const def = TOPIC_CONFIG_DEFS[name];
    if (!def)
      return {
        error: `unknown or unsupported topic config ${name} (supported: ${Object.keys(TOPIC_CONFIG_DEFS).join(', ')})`,
      };
    if (value === null) continue;
    const parsed = def.parse(value);
    if (parsed === undefined)
      return { error: `invalid value ${JSON.stringify(value)} for topic config ${name}` };
    (out as unknown as Record<string, unknown>)[def.key] = parsed;
  }
  return out;
}

/** Only the entries that differ from the defaults, for storing. */
export function configOverrides(config: TopicConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, def] of Object.entries(TOPIC_CONFIG_DEFS)) {
    const v = def.format(config[def.key]);
    if (v !== def.format(DEFAULT_TOPIC_CONFIG[def.key])) out[name] = v;
  }
  return out;
}
