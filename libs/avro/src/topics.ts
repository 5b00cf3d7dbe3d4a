import { createHash } from 'node:crypto';

/**
 * Topic names: `<prefix>.<schema>.<table>`, like Debezium. Kafka allows only [a-zA-Z0-9._-]
 * and 249 characters; any other character becomes `_`, and when that changed the name (or it had
 * to be cut) an 8-hex-digit hash of the exact names is appended so two tables never share a topic.
 */
const LEGAL = /[^a-zA-Z0-9_-]/g;

export function tableTopic(prefix: string, schema: string, table: string): string {
  const clean = (s: string) => s.replace(LEGAL, '_');
  let name = `${prefix}.${clean(schema)}.${clean(table)}`;
  const exact = clean(schema) === schema && clean(table) === table;
  if (!exact || name.length > 249) {
    const hash = createHash('sha256').update(`${schema}\u0000${table}`).digest('hex').slice(0, 8);
    name = `${name.slice(0, 240)}_${hash}`;
  }
  return name;
}

export function transactionsTopic(prefix: string): string {
  return `${prefix}.transactions`;
}

/** The task's schema dump and table map, for replay (see libs/task replay-manifest.ts). */
export function schemaTopic(prefix: string): string {
  return `${prefix}.schema`;
}

export function heartbeatTopic(prefix: string): string {
  return `${prefix}.heartbeat`;
}

export function deadLetterTopic(prefix: string): string {
  return `${prefix}.dlq`;
}
