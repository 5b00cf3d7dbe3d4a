import { randomBytes } from 'node:crypto';
import { ObjectError } from '@pgferry/core';
import type { Queryable } from './control-schema';

/**
 * A task's run: what its history on Kafka belongs to. A run begins when the task is registered
 * in a destination that does not know it (a fresh destination, or one recreated): it gets a new
 * id, and the source and Kafka it was started against are recorded with it. Every process
 * checks them at every start (checkRun), so a task pointed at another source, or at a Kafka
 * that does not hold its topics (an embedded broker started in another working directory), stops
 * before it reads or writes a record; every record the run writes carries its id (header
 * `pgferry.run`), and the appliers refuse records of another run.
 */
export interface RunIdentity {
  runId: string;
  /** The source's system identifier (pg_control_system(), IDENTIFY_SYSTEM), as text. */
  sourceSystem: string;
  sourceDatabase: string;
  /** The Kafka cluster id from the Metadata response. */
  kafkaCluster: string;
}

/** What a process sees where it runs; the parts it cannot see (an applier never reads the source) are left out. */
export type SeenIdentity = Partial<Omit<RunIdentity, 'runId'>>;

/** A new run id: 16 hex digits (64 random bits), short enough to travel in every record's header. */
export function newRunId(): string {
  return randomBytes(8).toString('hex');
}

/**
 * The run recorded with the task, or null when the destination does not know the task (no
 * control schema, no task row, or a row from before runs were recorded). Read-only.
 */
export async function readRun(client: Queryable, task: string): Promise<RunIdentity | null> {
  const { rows: has } = await client.query(
    `SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has_tasks,
            EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('pgferry.tasks') AND attname = 'run_id') AS has_runs`,
  );
  if (!has[0].has_tasks || !has[0].has_runs) return null;
  const { rows } = await client.query(
    `SELECT run_id, source_system_id, source_database, kafka_cluster_id FROM pgferry.tasks WHERE task = $1`,
    [task],
  );
  const r = rows[0];
  if (!r?.run_id) return null;
  return {
    runId: r.run_id,
    sourceSystem: r.source_system_id,
    sourceDatabase: r.source_database,
    kafkaCluster: r.kafka_cluster_id,
  };
}

/**
 * The task is started by the controller (registered already, see ControlStore.registerTask):
 * a task without a run yet gets `runId` and `seen` as its identity; one with a run is checked
 * against `seen` (RunMismatchError). Returns the task's run. Idempotent.
 */
export async function startRun(
  client: Queryable,
  task: string,
  runId: string,
  seen: Omit<RunIdentity, 'runId'>,
): Promise<RunIdentity> {
  await client.query(
    `UPDATE pgferry.tasks SET run_id = $2, source_system_id = $3, source_database = $4, kafka_cluster_id = $5
      WHERE task = $1 AND run_id IS NULL`,
    [task, runId, seen.sourceSystem, seen.sourceDatabase, seen.kafkaCluster],
  );
  return checkRun(client, task, seen);
}

/**
 * Every process's check at start: the task's recorded run against what this process sees.
 * Throws RunMismatchError (one line: what differs, what to do) on a difference, and an
 * ObjectError when the destination records no run for the task (the controller starts it).
 */
export async function checkRun(client: Queryable, task: string, seen: SeenIdentity): Promise<RunIdentity> {
  const run = await readRun(client, task);
  if (!run)
    throw new ObjectError(
      `task ${task} has no run recorded on the destination (pgferry.tasks): pgferry migrate starts it; run that first`,
      { code: 'NO_RUN' },
    );
  const problem = runMismatch(task, run, seen);
  if (problem) throw new RunMismatchError(problem);
  return run;
}

/** The one line that says how `seen` differs from the task's run and what to do, or null. */
export function runMismatch(task: string, run: RunIdentity, seen: SeenIdentity): string | null {
  const sourceDiffers =
    (seen.sourceSystem !== undefined && seen.sourceSystem !== run.sourceSystem) ||
    (seen.sourceDatabase !== undefined && seen.sourceDatabase !== run.sourceDatabase);
  if (sourceDiffers)
    return `task ${task} (run ${run.runId}) was started against source system ${run.sourceSystem} database ${run.sourceDatabase}; this source is system ${seen.sourceSystem ?? run.sourceSystem} database ${seen.sourceDatabase ?? run.sourceDatabase}: point the task at the source it was started against, or use a new --name (a new task) for this one`;
  if (seen.kafkaCluster !== undefined && seen.kafkaCluster !== run.kafkaCluster)
    return `task ${task} (run ${run.runId}) keeps its records in Kafka cluster ${run.kafkaCluster}; this Kafka is cluster ${seen.kafkaCluster}, which does not hold them: point the task at that Kafka (with the embedded broker, run from the working directory that holds its data, .pgferry/${task} by default), or start the task afresh into an empty destination, or use a new --name`;
  return null;
}

/** A process was started against another source or Kafka than the task's run. Fatal. */
export class RunMismatchError extends ObjectError {
  constructor(message: string) {
    super(message, { code: 'RUN_MISMATCH' });
  }
}

/**
 * Records where the run's records begin in `ends`' partitions (each one's end offset, read
 * before the run writes its first record there): in pgferry.start_offsets with the task, and as
 * the first stored offset of the applier group `group` in pgferry.offsets, so that every applier
 * seeks there and never reads an older run's records. Only partitions not recorded yet are
 * taken (a resumed run keeps its start, since records after it may not be applied yet), in one
 * transaction-safe statement.
 */
export async function recordStartOffsets(
  client: Queryable,
  task: string,
  group: string,
  ends: ReadonlyMap<string, bigint>,
): Promise<void> {
  if (!ends.size) return;
  const keys = [...ends.keys()];
  const at = keys.map((k) => k.lastIndexOf(':'));
  await client.query(
    `WITH u AS (SELECT * FROM unnest($3::text[], $4::int[], $5::bigint[]) AS u(topic, partition, start_offset)),
          fresh AS (INSERT INTO pgferry.start_offsets (task, topic, partition, start_offset)
                    SELECT $1, topic, partition, start_offset FROM u
                    ON CONFLICT (task, topic, partition) DO NOTHING
                    RETURNING topic, partition, start_offset)
     INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset)
     SELECT $2, topic, partition, start_offset FROM fresh
     ON CONFLICT (consumer_group, topic, partition) DO NOTHING`,
    [
      task,
      group,
      keys.map((k, i) => k.slice(0, at[i])),
      keys.map((k, i) => Number(k.slice(at[i] + 1))),
      [...ends.values()].map((v) => v.toString()),
    ],
  );
}

/** The run's start offset per "topic:partition" of `topics` (see recordStartOffsets). */
export async function readStartOffsets(
  client: Queryable,
  task: string,
  topics: readonly string[],
): Promise<Map<string, bigint>> {
  const { rows } = await client.query(
    `SELECT topic, partition, start_offset::text AS start FROM pgferry.start_offsets WHERE task = $1 AND topic = ANY($2::text[])`,
    [task, topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.start)]));
}
