import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { ObjectError } from '@pgferry/core';
import { RegistryClient, type RegistryTlsOptions } from '@pgferry/avro';
import { connect, describeEndpoint, formatLsn, quoteQualified, type Endpoint } from '@pgferry/pg';
import { PgSchemaMigrator } from '@pgferry/schema';
import { PerKeyApplier, SnapshotApplier, type Applier, type ApplierTarget } from '@pgferry/apply';
import {
  applierGroup,
  ControlStore,
  ensureControlSchema,
  readOffsets,
  readRun,
  recordStartOffsets,
  startRun,
} from '@pgferry/control';
import { kafkaClusterId } from '@pgferry/kafka';
import type { KafkaClient } from '../kafka-client';
import type { MigrationEvent } from '../migration-event';
import { runPhases, type Phase, type PhaseRunContext } from '../phases/phase';
import { replayBounds, type ReplayBounds, type ReplayPoint } from './replay-bounds';
import { advanceOwnedSequences, refreshMaterializedViews } from './replay-finish';
import type { ReplayManifest } from '../replay-manifest';

export interface ReplayOptions {
  kafka: KafkaClient;
  registryUrl: string;
  /** The registry's CA and server name (replay --kafka-config's schemaRegistry). */
  registryTls?: RegistryTlsOptions;
  /** The task's record on `<prefix>.schema` (readReplayManifest). */
  manifest: ReplayManifest;
  /** The database to rebuild: empty, or the one a replay of the same run was interrupted in. */
  target: Endpoint;
  point: ReplayPoint;
  /** Where the schema dump is unpacked and restored from (kept between runs, like migrate's). */
  workDir: string;
  /** Rows per second applied at most (the applier's throttle). */
  rowsPerSecond?: number;
  onEvent?: (e: MigrationEvent) => void;
  /** Computed already (replay --verify reads them before creating its database). */
  bounds?: ReplayBounds;
}

export interface ReplayResult {
  tables: number;
  /** Records applied from each partition's start to its end (skipped re-sends included). */
  records: bigint;
  untilLsn: string | null;
  resumed: boolean;
  /** Sequences moved past their column's largest replayed value (advanceOwnedSequences). */
  sequences: number;
}

const APP = { applicationName: 'pgferry replay' };
const POLL_MS = 200;

/** The task a replay records in its target's control schema (never the task's own name: see runReplay). */
export function replayTaskName(task: string): string {
  return `replay-${task}`;
}

/**
 * Rebuilds a database from a task's topics alone, never reaching the source: the schema from
 * the task's dump (pre-data, then post-data, so the keys exist for the appliers), then every
 * table record of the task's run from its start offset up to the point: the snapshot rows by
 * COPY (snapshot applier), the changes by key in each partition's order (per-key applier; see
 * applyRecords). The appliers store each partition's offset in the target with the rows they
 * apply, so every record takes effect once, and a replay run again after it was killed resumes
 * from there (its schema steps recorded as phases of task `replay-<task>` in the target's
 * control schema).
 * Refuses, before writing anything, a target that holds tables (unless it is this run's replay
 * resumed) or a replay of another run, and every error of replayBounds.
 */
export async function runReplay(opts: ReplayOptions): Promise<ReplayResult> {
  const { manifest, kafka } = opts;
  const emit = opts.onEvent ?? (() => undefined);
  const name = replayTaskName(manifest.task);
  const group = applierGroup(name);
  const topics = manifest.targets.map((t) => t.topic);
  const bounds = opts.bounds ?? (await replayBounds(kafka, manifest, opts.point));
  const control = await connect(opts.target, 'destination', APP);
  let resumed = false;
  try {
    const recorded = await readRun(control, name);
    if (recorded && recorded.runId !== manifest.runId)
      throw new ObjectError(
        `destination ${describeEndpoint(opts.target)} holds a replay of run ${recorded.runId} of task ${manifest.task}; the topics hold run ${manifest.runId}: replay into an empty database`,
        { code: 'REPLAY_OTHER_RUN' },
      );
    resumed = recorded !== null;
    if (resumed) await refusePast(control, name, group, topics, bounds);
    if (!resumed) {
      await refuseNonEmpty(control, opts.target, manifest);
      await ensureControlSchema(control);
      await new ControlStore(control, name).registerTask({ name });
      await startRun(control, name, manifest.runId, {
        sourceSystem: manifest.source.system,
        sourceDatabase: manifest.source.database,
        kafkaCluster: await kafkaClusterId(kafka),
      });
    }
    // Only partitions without one yet (a replay killed before it recorded them all).
    await recordStartOffsets(control, name, group, bounds.starts);
    if (manifest.schema) await restoreSchema(opts, control, name, !resumed, emit);
  } finally {
    await control.end().catch(() => undefined);
  }
  await applyRecords(opts, bounds, name, group, topics, emit);
  const target = await connect(opts.target, 'destination', APP);
  let sequences: number;
  try {
    sequences = await advanceOwnedSequences(target);
    await refreshMaterializedViews(target);
  } finally {
    await target.end().catch(() => undefined);
  }
  let records = 0n;
  for (const [k, end] of bounds.ends) records += end - (bounds.starts.get(k) ?? end);
  return {
    tables: manifest.targets.length,
    records,
    untilLsn: bounds.untilLsn === null ? null : formatLsn(bounds.untilLsn),
    resumed,
    sequences,
  };
}

/**
 * A new replay's target must hold no table outside pgferry's schema (with a task that did
 * not migrate the schema: its tables, each empty), so that what the replay leaves is what the
 * topics say and nothing else.
 */
async function refuseNonEmpty(client: Client, target: Endpoint, manifest: ReplayManifest): Promise<void> {
  const where = `destination ${describeEndpoint(target)}`;
  if (manifest.schema) {
    const { rows } = await client.query(
      `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry') AND n.nspname NOT LIKE 'pg\\_toast%'
        ORDER BY 1 LIMIT 6`,
    );
    if (rows.length)
      throw new ObjectError(
        `${where} is not empty: it holds ${rows
          .slice(0, 5)
          .map((r) => r.name)
          .join(
            ', ',
          )}${rows.length > 5 ? ' and more' : ''}; replay rebuilds task ${manifest.task}'s tables from nothing: give an empty database (createdb), or compare this one with --verify`,
        { code: 'REPLAY_TARGET_NOT_EMPTY' },
      );
    return;
  }
  for (const t of manifest.targets) {
    const { rows } = await client.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [quoted(t)]);
    if (!rows[0].present)
      throw new ObjectError(
        `task ${manifest.task} did not migrate the schema, so replay does not create it, and ${where} has no table ${quoted(t)}: create the tables first (as the task's destination had them)`,
        { code: 'REPLAY_TABLE_MISSING' },
      );
    const { rows: any } = await client.query(`SELECT EXISTS (SELECT 1 FROM ${quoted(t)}) AS rows`);
    if (any[0].rows)
      throw new ObjectError(
        `${where}: table ${quoted(t)} is not empty; replay rebuilds it from nothing: empty it, or compare it with --verify`,
        { code: 'REPLAY_TARGET_NOT_EMPTY' },
      );
  }
}

/**
 * A resumed replay cannot go back: a partition the target applied past the point's end means it
 * holds changes committed after the point.
 */
async function refusePast(
  control: Client,
  name: string,
  group: string,
  topics: string[],
  bounds: ReplayBounds,
): Promise<void> {
  const stored = await readOffsets(control, group, topics);
  for (const [key, end] of bounds.ends) {
    const at = stored.get(key);
    if (at === undefined || at <= end) continue;
    const cut = key.lastIndexOf(':');
    throw new ObjectError(
      `this database holds task ${name.slice('replay-'.length)}'s records past the point: Kafka topic ${key.slice(0, cut)} partition ${key.slice(cut + 1)} is applied up to offset ${at}, the point ends at ${end}; a replay cannot go back: replay into an empty database`,
      { code: 'REPLAY_PAST_POINT' },
    );
  }
}

/** Pre-data, then post-data (keys, indexes, constraints: the per-key applier upserts by key). */
async function restoreSchema(
  opts: ReplayOptions,
  control: Client,
  name: string,
  fresh: boolean,
  emit: (e: MigrationEvent) => void,
): Promise<void> {
  const schema = opts.manifest.schema!;
  // One directory per run and target: the restore steps keep their progress there.
  const at = createHash('sha256').update(describeEndpoint(opts.target)).digest('hex').slice(0, 12);
  const dir = join(opts.workDir, 'replay', `run-${opts.manifest.runId}-${at}`);
  // A new replay into this target (a database recreated since the last) starts its steps afresh.
  if (fresh) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dumpFile = join(dir, schema.plan.dumpFile);
  writeFileSync(dumpFile, schema.dump, { mode: 0o600 });
  const planFile = join(dir, 'schema-plan.json');
  writeFileSync(`${planFile}.tmp`, JSON.stringify({ ...schema.plan, dumpFile }), { mode: 0o600 });
  renameSync(`${planFile}.tmp`, planFile);
  // The restore steps read only the plan, the archive and the destination; `source` is for the
  // dump step, which replay never runs (the archive comes from the topics).
  const migrator = new PgSchemaMigrator({ source: opts.target, destination: opts.target, workDir: dir });
  const phases: Array<Phase<PhaseRunContext>> = [
    {
      name: 'schema-pre',
      selection: () => 'selected',
      run: async () => counts(await migrator.restorePreData()),
    },
    {
      name: 'schema-post',
      selection: () => 'selected',
      run: async () => counts(await migrator.restorePostData()),
    },
  ];
  await runPhases(phases, { records: new ControlStore(control, name), emit });
}

function counts(step: { counts: Record<string, number> }): string {
  return Object.entries(step.counts)
    .map(([k, n]) => `${n} ${k.toLowerCase()}`)
    .join(', ');
}

/**
 * The run's records up to the bounds' ends: the snapshot records through the snapshot applier
 * (COPY, up to each partition's first change), then the rest through the per-key applier; both
 * store their offsets for the same group, so each goes on where the other (or a killed replay)
 * stopped. With a rate limit everything goes through the per-key applier, which has the throttle.
 * Resolves once the target holds every record up to the ends.
 */
async function applyRecords(
  opts: ReplayOptions,
  bounds: ReplayBounds,
  name: string,
  group: string,
  topics: string[],
  emit: (e: MigrationEvent) => void,
): Promise<void> {
  const connectTarget = async () => connect(opts.target, 'destination', APP);
  const registry = new RegistryClient(opts.registryUrl, opts.registryTls);
  const common = { kafka: opts.kafka, registry, group, task: name, targets: opts.manifest.targets };
  const watcher = await connectTarget();
  try {
    if (!opts.rowsPerSecond) {
      const first = await connectTarget();
      try {
        const snapshot = new SnapshotApplier({
          ...common,
          destination: first,
          connect: connectTarget,
          until: bounds.snapshotEnds,
          onApplied: (t, rows) => emit({ kind: 'applied', table: `${t.schema}.${t.table}`, rows }),
        });
        await applyUntil(snapshot, bounds.snapshotEnds, watcher, group, topics);
      } finally {
        await first.end().catch(() => undefined);
      }
    }
    const changes = new PerKeyApplier({
      ...common,
      connect: connectTarget,
      membership: 'exclusive',
      until: bounds.ends,
      throttle: opts.rowsPerSecond ? { rowsPerSecond: opts.rowsPerSecond } : undefined,
      onApplied: (t, c) =>
        emit({
          kind: 'applied',
          table: `${t.schema}.${t.table}`,
          rows: c.upserted + c.deleted + c.truncated,
        }),
    });
    await applyUntil(changes, bounds.ends, watcher, group, topics);
  } finally {
    await watcher.end().catch(() => undefined);
  }
}

/** Starts `applier`, waits until the target's stored offsets reach `ends`, stops it. */
async function applyUntil(
  applier: Applier,
  ends: ReadonlyMap<string, bigint>,
  watcher: Client,
  group: string,
  topics: string[],
): Promise<void> {
  try {
    await applier.start();
    for (;;) {
      if (applier.error) throw applier.error;
      const stored = await readOffsets(watcher, group, topics);
      if ([...ends].every(([k, end]) => (stored.get(k) ?? 0n) >= end)) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    await applier.stop().catch(() => undefined);
  }
}

function quoted(t: ApplierTarget): string {
  return quoteQualified(t.schema, t.table);
}
