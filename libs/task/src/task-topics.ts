import { ObjectError, type TaskSpec } from '@pgferry/core';
import { deadLetterTopic, heartbeatTopic, RUN_HEADER, tableTopic, transactionsTopic } from '@pgferry/avro';
import {
  checkTopicConfigs,
  planTopic,
  topicHoldings,
  withKafkaAdmin,
  type PlannedTopic,
  type TopicConfigProblem,
  type TopicHolding,
  type TopicRole,
} from '@pgferry/kafka';
import type { KafkaClient } from './kafka-client';

/**
 * A task's topics on Kafka (docs/kafka-topics.md): which it uses, whether they are free or its
 * run's own, the configs they are created with, and what is wrong with existing ones. pgferry
 * never deletes a topic unless told to (kafka.resetTopics, --reset-topics).
 */

export interface TaskTopic {
  name: string;
  role: TopicRole;
}

/** The prefix of a task's topics: kafka.topicPrefix, else pgferry.<task>. */
export function taskTopicPrefix(spec: TaskSpec): string {
  return spec.kafka.topicPrefix ?? `pgferry.${spec.name}`;
}

/** Every topic a task writes: a topic per table, and for a stream the transaction and heartbeat topics. */
export function taskTopics(
  spec: TaskSpec,
  prefix: string,
  tables: ReadonlyArray<{ schema: string; table: string }>,
): TaskTopic[] {
  const out: TaskTopic[] = tables.map((t) => ({
    name: tableTopic(prefix, t.schema, t.table),
    role: 'table',
  }));
  if (spec.migrationTypes.incremental)
    out.push(
      { name: transactionsTopic(prefix), role: 'transactions' },
      { name: heartbeatTopic(prefix), role: 'heartbeat' },
    );
  if (spec.options.onError === 'dead-letter')
    out.push({ name: deadLetterTopic(prefix), role: 'dead-letter' });
  return out;
}

/** Foreign topics the refusal names (and whose records it reads to say whose they are). */
const FOREIGN_NAMED = 10;

/** The topics appliers read from their run's start offsets: those whose records a run owns. */
function owned(t: TaskTopic): boolean {
  return t.role === 'table' || t.role === 'transactions';
}

export interface TopicsInspection {
  brokers: number;
  clusterId: string | null;
  topics: TaskTopic[];
  /** Of the topics that exist. */
  holdings: TopicHolding[];
  /** Existing run-owned topics holding records of another run (or of none). */
  foreign: TopicHolding[];
  /** The configs each topic is (or would be) created with. */
  plans: Map<string, PlannedTopic>;
  /** Config problems of the existing topics that are kept (not foreign, or foreign without a reset). */
  problems: TopicConfigProblem[];
}

export interface InspectTopicsOptions {
  spec: TaskSpec;
  kafka: KafkaClient;
  prefix: string;
  tables: ReadonlyArray<{ schema: string; table: string }>;
  /** The task's run, when it has one: topics holding only its records from its start offsets are its own. */
  runId: string | null;
  startOffsets?: ReadonlyMap<string, bigint>;
  /** The widest row of each selected table (measureRowWidths), in bytes; a table not listed counts 0. */
  rowWidths: ReadonlyArray<{ schema: string; table: string; bytes: number }>;
}

/** Reads what Kafka holds of the task's topics and what pgferry would create. Read-only. */
export async function inspectTaskTopics(opts: InspectTopicsOptions): Promise<TopicsInspection> {
  const topics = taskTopics(opts.spec, opts.prefix, opts.tables);
  return withKafkaAdmin(opts.kafka, async (admin) => {
    const brokers = await admin.brokerCount();
    // Each table topic is sized for its own table's widest row; the dead-letter topic for the widest of all.
    const widths = new Map(opts.rowWidths.map((w) => [tableTopic(opts.prefix, w.schema, w.table), w.bytes]));
    const widest = Math.max(0, ...widths.values());
    const plans = new Map(
      topics.map((t) => [
        t.name,
        planTopic(t.role, {
          brokers,
          widestRowBytes: t.role === 'table' ? (widths.get(t.name) ?? 0) : widest,
          retentionMs: opts.spec.kafka.retentionMs,
          maxMessageBytes: opts.spec.kafka.maxMessageBytes,
        }),
      ]),
    );
    const holdings = await topicHoldings(
      admin,
      opts.kafka,
      topics.map((t) => t.name),
      RUN_HEADER,
      opts.startOffsets,
      FOREIGN_NAMED,
    );
    const role = new Map(topics.map((t) => [t.name, t]));
    const foreign = holdings.filter((h) => owned(role.get(h.topic)!) && h.foreignRecords > 0n);
    const configs = await admin.describeTopicConfigs(holdings.map((h) => h.topic));
    const problems = holdings.flatMap((h) =>
      checkTopicConfigs(h.topic, role.get(h.topic)!.role, configs.get(h.topic) ?? {}, plans.get(h.topic)!),
    );
    return { brokers, clusterId: admin.clusterId, topics, holdings, foreign, plans, problems };
  });
}

/** The one line that refuses foreign topics: which, whose records, and the two ways on. */
export function foreignTopicsMessage(
  task: string,
  runId: string | null,
  foreign: readonly TopicHolding[],
): string {
  const shown = foreign.slice(0, FOREIGN_NAMED).map((h) => {
    const runs = [...h.runs].map((r) => (r ? `run ${r}` : 'no pgferry run'));
    return `${h.topic} (${h.foreignRecords} records, of ${runs.length ? runs.join(', ') : 'another run'})`;
  });
  const more = foreign.length > FOREIGN_NAMED ? ` and ${foreign.length - FOREIGN_NAMED} more` : '';
  return `Kafka topic${foreign.length > 1 ? 's' : ''} ${shown.join(', ')}${more} hold${foreign.length > 1 ? '' : 's'} records that are not of task ${task}'s ${runId ? `run ${runId}` : 'new run'}, and pgferry never deletes topics by itself: run again with --reset-topics (kafka.resetTopics: true in the spec) to delete and recreate ${foreign.length > 1 ? 'them' : 'it'}, or give the task topics of its own with kafka.topicPrefix`;
}

export interface PreparedTopics {
  /** Foreign topics deleted and created again (resetTopics). */
  reset: string[];
  created: string[];
  /** Config alerts of kept topics, each a line naming the topic, the config and the fix. */
  warnings: string[];
}

/**
 * Before a run writes: refuses foreign topics (ObjectError FOREIGN_TOPICS) unless
 * kafka.resetTopics, which deletes them; fails on a kept topic that cannot take the widest row
 * (its max.message.bytes); creates the missing topics with their planned configs. Idempotent.
 */
export async function prepareTaskTopics(
  opts: InspectTopicsOptions & { partitions: number },
): Promise<PreparedTopics> {
  const seen = await inspectTaskTopics(opts);
  const reset = opts.spec.kafka.resetTopics ? seen.foreign.map((h) => h.topic) : [];
  if (seen.foreign.length && !reset.length)
    throw new ObjectError(foreignTopicsMessage(opts.spec.name, opts.runId, seen.foreign), {
      code: 'FOREIGN_TOPICS',
    });
  const kept = seen.problems.filter((p) => !reset.includes(p.topic));
  const refused = kept.filter((p) => p.level === 'failed');
  if (refused.length)
    throw new ObjectError(refused.map((p) => `${p.message}; fix: ${p.fix}`).join('; '), {
      code: 'TOPIC_CONFIG',
    });
  const existing = new Set(seen.holdings.map((h) => h.topic).filter((t) => !reset.includes(t)));
  const missing = seen.topics.filter((t) => !existing.has(t.name));
  await withKafkaAdmin(opts.kafka, async (admin) => {
    if (reset.length) await admin.deleteTopics(reset);
    await admin.ensureTopics(
      missing.map((t) => ({
        name: t.name,
        partitions: t.role === 'table' ? opts.partitions : 1,
        ...seen.plans.get(t.name)!,
      })),
    );
  });
  return {
    reset,
    created: missing.map((t) => t.name),
    warnings: kept.map((p) => `${p.message}; fix: ${p.fix}`),
  };
}
