/**
 * The configs pgferry creates its topics with, and what it says of an existing topic whose
 * configs do not fit (docs/kafka-topics.md). Pure: the admin reads the facts, this decides.
 *
 * A table topic holds the snapshot's rows and then every change of the table, in order: it is
 * what a replay rebuilds a destination from and what a stopped applier goes on from. It is kept
 * whole (cleanup.policy delete, retention as the spec says, forever by default), never
 * compacted: compaction keeps only the last record per key, so a replay to a point in the
 * middle of the stream, and a transaction-by-transaction applier, would miss records.
 */

/** Kafka's default max.message.bytes (1 MiB + the 12-byte log overhead). */
export const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
const MIB = 1024 * 1024;
/** Room for the key, the envelope's fields, headers and the batch framing around a row. */
const RECORD_HEADROOM_BYTES = 256 * 1024;
/** How long the heartbeat topic keeps its records: only the latest positions matter. */
export const HEARTBEAT_RETENTION_MS = 24 * 3600 * 1000;

export type TopicRole = 'table' | 'transactions' | 'heartbeat' | 'dead-letter';

export interface TopicPlanInput {
  /** Brokers the cluster's metadata lists. */
  brokers: number;
  /** Widest row of the selected tables, in bytes (the precheck's measure); 0 when unknown. */
  widestRowBytes: number;
  /** retention.ms of the replayable topics; -1 keeps records forever. */
  retentionMs: number;
  /** An explicit max.message.bytes, instead of the one sized from the widest row. */
  maxMessageBytes?: number;
}

export interface PlannedTopic {
  replicationFactor: number;
  configs: Record<string, string>;
}

/**
 * The largest record a task's topics must take: a change of a table with replica identity
 * full carries the row twice (before and after), plus headroom, rounded up to a MiB; never
 * below Kafka's default.
 */
export function neededMessageBytes(widestRowBytes: number): number {
  const need = 2 * Math.max(0, widestRowBytes) + RECORD_HEADROOM_BYTES;
  return Math.max(KAFKA_DEFAULT_MAX_MESSAGE_BYTES, Math.ceil(need / MIB) * MIB);
}

/**
 * Replication from the cluster's size: one broker RF 1; two RF 2 (min.insync.replicas 1, so
 * one broker may be down); three or more RF 3 with min.insync.replicas 2, so an acknowledged
 * record is on two brokers and one may fail.
 */
export function replicationFor(brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  if (brokers >= 3) return { replicationFactor: 3, minInsyncReplicas: 2 };
  if (brokers === 2) return { replicationFactor: 2, minInsyncReplicas: 1 };
  return { replicationFactor: 1, minInsyncReplicas: 1 };
}

/** The configs a topic of `role` is created with. */
export function planTopic(role: TopicRole, input: TopicPlanInput): PlannedTopic {
  const { replicationFactor, minInsyncReplicas } = replicationFor(input.brokers);
  const maxMessageBytes = input.maxMessageBytes ?? neededMessageBytes(input.widestRowBytes);
  const retention = role === 'heartbeat' ? HEARTBEAT_RETENTION_MS : input.retentionMs;
  return {
    replicationFactor,
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(retention),
      'retention.bytes': '-1',
      'max.message.bytes': String(
        role === 'table' || role === 'dead-letter' ? maxMessageBytes : KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
      ),
      ...(replicationFactor > 1 ? { 'min.insync.replicas': String(minInsyncReplicas) } : {}),
    },
  };
}

export interface TopicConfigProblem {
  topic: string;
  config: string;
  /** failed: records would be refused or lost; alert: replay or a long stop may lose records. */
  level: 'failed' | 'alert';
  message: string;
  /** The command that sets it right (kafka-configs.sh). */
  fix: string;
}

/**
 * What is wrong for pgferry with an existing topic's configs (`actual`, as DescribeConfigs
 * gives them), against the plan: a max.message.bytes below the widest record fails (Kafka
 * would refuse the row); compaction or a shorter retention is an alert (replay and an applier
 * stopped longer than the retention would miss records; the applier stops on the gap).
 */
export function checkTopicConfigs(
  topic: string,
  role: TopicRole,
  actual: Readonly<Record<string, string | null>>,
  planned: PlannedTopic,
): TopicConfigProblem[] {
  const out: TopicConfigProblem[] = [];
  const fix = (config: string, value: string) =>
    `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${topic} --add-config ${config}=${value}`;
  const wantMax = Number(planned.configs['max.message.bytes']);
  const max = Number(actual['max.message.bytes'] ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
  if (max < wantMax)
    out.push({
      topic,
      config: 'max.message.bytes',
      level: 'failed',
      message: `Kafka topic ${topic} has max.message.bytes ${max}, below the ${wantMax} the widest row needs: Kafka would refuse that row's record`,
      fix: fix('max.message.bytes', String(wantMax)),
    });
  if (role === 'heartbeat') return out;
  const policy = (actual['cleanup.policy'] ?? 'delete').split(',').map((s) => s.trim());
  if (policy.includes('compact'))
    out.push({
      topic,
      config: 'cleanup.policy',
      level: 'alert',
      message: `Kafka topic ${topic} is compacted (cleanup.policy ${policy.join(',')}): Kafka drops all but the last record of each key, so a replay or an applier behind the compaction misses changes`,
      fix: fix('cleanup.policy', 'delete'),
    });
  const want = Number(planned.configs['retention.ms']);
  const has = Number(actual['retention.ms'] ?? 604_800_000);
  if (shorter(has, want))
    out.push({
      topic,
      config: 'retention.ms',
      level: 'alert',
      message: `Kafka topic ${topic} keeps records for retention.ms ${has}, less than the task's ${want === -1 ? 'forever (-1)' : want}: records older than that are gone for a replay, and an applier stopped longer stops on the gap`,
      fix: fix('retention.ms', String(want)),
    });
  return out;
}

/** Whether retention `has` keeps less than `want` (-1: forever). */
function shorter(has: number, want: number): boolean {
  if (has === -1) return false;
  return want === -1 || has < want;
}
