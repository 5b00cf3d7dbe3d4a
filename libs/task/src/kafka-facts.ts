import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describeError, PgferryError, type TaskSpec } from '@pgferry/core';
import { planTopic } from '@pgferry/kafka';
import { readRun, readStartOffsets } from '@pgferry/control';
import type { KafkaFacts, KafkaFactsReader } from '@pgferry/precheck';
import { kafkaClient, specKafkaConnection } from './kafka-client';
import { foreignTopicsMessage, inspectTaskTopics, taskTopicPrefix, taskTopics } from './task-topics';

/**
 * The precheck's Kafka facts of a task (libs/precheck check-kafka.ts): on real Kafka the
 * broker, the task's topics and their configs, read-only; on the embedded broker (no
 * kafka.brokers) the free disk where its data goes, `embeddedDataDir`.
 */
export function kafkaFactsReader(spec: TaskSpec, embeddedDataDir: string): KafkaFactsReader {
  return async ({ tables, rowWidths, destination }) => {
    const widestRowBytes = Math.max(0, ...rowWidths.map((w) => w.bytes));
    const input = {
      brokers: 1,
      widestRowBytes,
      retentionMs: spec.kafka.retentionMs,
      maxMessageBytes: spec.kafka.maxMessageBytes,
    };
    if (!spec.kafka.brokers) {
      const plan = planTopic('table', input);
      return {
        kind: 'embedded',
        where: embeddedDataDir,
        maxMessageBytes: Number(plan.configs['max.message.bytes']),
        retentionMs: spec.kafka.retentionMs,
        replicationFactor: 1,
        existingTopics: 0,
        missingTopics: taskTopics(spec, taskTopicPrefix(spec), tables).length,
        freeDiskBytes: freeBytes(embeddedDataDir),
      };
    }
    const where = spec.kafka.brokers.join(',');
    const prefix = taskTopicPrefix(spec);
    const run = await readRun(destination, spec.name);
    // Where the run's records begin, for a run the destination knows (its control schema has them).
    const startOffsets = run
      ? await readStartOffsets(
          destination,
          spec.name,
          taskTopics(spec, prefix, tables).map((t) => t.name),
        ).catch(() => new Map<string, bigint>())
      : new Map<string, bigint>();
    let seen;
    try {
      seen = await inspectTaskTopics({
        spec,
        // The spec's TLS and SASL, as every other client of the task connects.
        kafka: kafkaClient(specKafkaConnection(spec, spec.kafka.brokers), `pgferry-${spec.name}-precheck`),
        prefix,
        tables,
        runId: run?.runId ?? null,
        startOffsets,
        rowWidths,
      });
    } catch (err) {
      return {
        kind: 'external',
        where,
        unreachable: err instanceof PgferryError ? err.message : describeError(err),
      };
    }
    const reset = spec.kafka.resetTopics ? seen.foreign.map((h) => h.topic) : [];
    const plan = planTopic('table', { ...input, brokers: seen.brokers });
    const facts: KafkaFacts = {
      kind: 'external',
      where,
      brokerCount: seen.brokers,
      clusterId: seen.clusterId,
      existingTopics: seen.holdings.length - reset.length,
      missingTopics: seen.topics.length - seen.holdings.length + reset.length,
      foreign:
        seen.foreign.length && !reset.length
          ? foreignTopicsMessage(spec.name, run?.runId ?? null, seen.foreign)
          : null,
      reset,
      problems: seen.problems.filter((p) => !reset.includes(p.topic)),
      maxMessageBytes: Number(plan.configs['max.message.bytes']),
      retentionMs: spec.kafka.retentionMs,
      replicationFactor: plan.replicationFactor,
    };
    return facts;
  };
}

/** Free bytes of the file system that holds `dir` (or would: its nearest existing parent). */
function freeBytes(dir: string): number {
  let at = resolve(dir);
  for (;;) {
    try {
      const s = statfsSync(at);
      return s.bavail * s.bsize;
    } catch {
      const up = dirname(at);
      if (up === at) throw new PgferryError(`cannot read the free disk of ${dir}`);
      at = up;
    }
  }
}
