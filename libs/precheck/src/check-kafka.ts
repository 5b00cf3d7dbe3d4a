import type { Client } from 'pg';
import type { PrecheckItem } from './precheck-report';

/**
 * The precheck's Kafka section (docs/kafka-topics.md): the broker, the task's topics, their
 * retention and message size against the widest row, and the embedded broker's free disk.
 * Pure: the facts come from a reader the caller gives (runPrecheck's `kafka` option; libs/task
 * reads them with pgferry's Kafka client), so this package needs no Kafka client.
 */

export interface KafkaTopicProblem {
  topic: string;
  config: string;
  level: 'failed' | 'alert';
  message: string;
  fix: string;
}

export interface KafkaFacts {
  /** embedded: migrate starts a broker of the run's own; external: kafka.brokers. */
  kind: 'embedded' | 'external';
  /** The brokers as the user gave them, or where the embedded broker's data goes. */
  where: string;
  /** Why Kafka could not be reached (external only); the rest is then unknown. */
  unreachable?: string;
  brokerCount?: number;
  clusterId?: string | null;
  /** How many of the task's topics exist, and how many it would create. */
  existingTopics?: number;
  missingTopics?: number;
  /** The refusal line when topics hold records of another run (and kafka.resetTopics is off). */
  foreign?: string | null;
  /** Foreign topics that kafka.resetTopics deletes and creates again. */
  reset?: string[];
  /** Config problems of the topics that are kept. */
  problems?: KafkaTopicProblem[];
  /** max.message.bytes the widest table's topic is created with, and the retention.ms. */
  maxMessageBytes?: number;
  retentionMs?: number;
  replicationFactor?: number;
  /** Embedded: the free bytes of the file system that holds its data dir. */
  freeDiskBytes?: number;
}

/** What the reader gets: the selected tables (their sizes) and the widest row measured. */
export interface KafkaFactsInput {
  tables: ReadonlyArray<{ schema: string; table: string; bytes: number }>;
  /** The widest row of each table (libs/pg measureRowWidths). */
  rowWidths: ReadonlyArray<{ schema: string; table: string; bytes: number }>;
  /** The precheck's read-only destination session (the task's run and start offsets). */
  destination: Pick<Client, 'query'>;
}

export type KafkaFactsReader = (input: KafkaFactsInput) => Promise<KafkaFacts>;

/** Largest request a Kafka broker takes by default (socket.request.max.bytes), the embedded one too. */
const MAX_REQUEST_BYTES = 100 * 1024 * 1024;

const mb = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MB`;

export function checkKafka(
  facts: KafkaFacts,
  widest: { table: string | null; bytes: number; sampled: boolean },
  databaseBytes: number,
): PrecheckItem[] {
  const items: PrecheckItem[] = [];
  if (facts.unreachable) {
    items.push({
      id: 'kafka:broker',
      name: 'kafka broker',
      level: 'failed',
      object: facts.where,
      message: `${facts.unreachable}; check kafka.brokers (--kafka, KAFKA_BROKERS), the network and the credentials`,
    });
    return items;
  }
  items.push({
    id: 'kafka:broker',
    name: 'kafka broker',
    level: 'passed',
    object: facts.where,
    message:
      facts.kind === 'embedded'
        ? `embedded broker: migrate starts one of the run's own, its data under ${facts.where}`
        : `reached Kafka ${facts.where} (cluster ${facts.clusterId ?? 'without id'}, ${facts.brokerCount} broker${facts.brokerCount === 1 ? '' : 's'}): topics get replication factor ${facts.replicationFactor}`,
  });
  if (facts.foreign)
    items.push({ id: 'kafka:topics', name: 'kafka topics', level: 'failed', message: facts.foreign });
  else
    items.push({
      id: 'kafka:topics',
      name: 'kafka topics',
      level: 'passed',
      message: facts.reset?.length
        ? `kafka.resetTopics: ${facts.reset.join(', ')} hold another run's records and will be deleted and created again`
        : `${facts.existingTopics ?? 0} of the task's topics exist and hold only its run's records; ${facts.missingTopics ?? 0} to create`,
    });
  const retention =
    facts.retentionMs === -1 ? 'forever (retention.ms -1)' : `retention.ms ${facts.retentionMs}`;
  const size = (facts.problems ?? []).filter((p) => p.config === 'max.message.bytes');
  const rest = (facts.problems ?? []).filter((p) => p.config !== 'max.message.bytes');
  for (const p of rest)
    items.push({
      id: `kafka:${p.config}:${p.topic}`,
      name: 'kafka retention',
      level: p.level,
      object: p.topic,
      message: p.message,
      fix: p.fix,
    });
  if (!rest.length)
    items.push({
      id: 'kafka:retention',
      name: 'kafka retention',
      level: 'passed',
      message: `the task's topics keep records ${retention}, kept whole (not compacted), as a replay needs`,
    });
  const where = widest.table
    ? ` (${widest.table}${widest.sampled ? ', from a sample of the table' : ''})`
    : '';
  if (2 * widest.bytes > MAX_REQUEST_BYTES / 2)
    items.push({
      id: 'kafka:message-size',
      name: 'kafka message size',
      level: 'failed',
      object: widest.table ?? undefined,
      message: `the widest row${where} holds ${mb(widest.bytes)}: its change record would pass the ${mb(MAX_REQUEST_BYTES)} a Kafka request may carry (socket.request.max.bytes); leave the table out of the task (objects.exclude) or move its large values elsewhere`,
    });
  else if (size.length)
    for (const p of size)
      items.push({
        id: `kafka:message-size:${p.topic}`,
        name: 'kafka message size',
        level: p.level,
        object: p.topic,
        message: `${p.message}${where}`,
        fix: p.fix,
      });
  else
    items.push({
      id: 'kafka:message-size',
      name: 'kafka message size',
      level: 'passed',
      message: `the widest row${where} holds ${mb(widest.bytes)}; the table topics take records up to max.message.bytes ${facts.maxMessageBytes}`,
    });
  if (facts.kind === 'embedded' && facts.freeDiskBytes !== undefined) {
    const free = facts.freeDiskBytes;
    const level = free < databaseBytes ? 'failed' : free < 2 * databaseBytes ? 'alert' : 'passed';
    items.push({
      id: 'kafka:disk',
      name: 'kafka disk',
      level,
      object: facts.where,
      message:
        level === 'passed'
          ? `${mb(free)} free for the embedded broker's data, more than twice the ${mb(databaseBytes)} the selected tables take on the source`
          : `only ${mb(free)} free for the embedded broker's data under ${facts.where}, ${level === 'failed' ? 'less than' : 'less than twice'} the ${mb(databaseBytes)} the selected tables take on the source (the topics keep the snapshot and every change): free disk there, or give --work-dir on a larger file system`,
    });
  }
  return items;
}
