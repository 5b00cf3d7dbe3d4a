import type { Client } from 'pg';
import { ObjectError, type TaskSpec } from '@pgferry/core';
import {
  connect,
  describeEndpoint,
  listTables,
  quoteQualified,
  resolveEndpoint,
  resolveSelection,
  type Endpoint,
  type SelectedTable,
  tableKey,
} from '@pgferry/pg';
import { PgSchemaMigrator, type SchemaStepResult } from '@pgferry/schema';
import { RegistryClient, tableTopic } from '@pgferry/avro';
import {
  ControlStore,
  ensureControlSchema,
  readStreamTables,
  type PhaseName,
  applierGroup,
  type StreamLag,
} from '@pgferry/control';
import {
  prepareStreams,
  runSnapshotCapture,
  createSlotWithSnapshot,
  dropSlot,
  type ExportedSnapshot,
} from '@pgferry/capture';
import {
  SnapshotApplier,
  type ApplierTarget,
  buildDeferredKeys,
  prepareKeyConstraints,
} from '@pgferry/apply';
import type { DeferredKeys } from '@pgferry/apply';
import { withKafkaAdmin, type KafkaClientConfig } from '@pgferry/kafka';
import { syncSequences, type SequenceSyncResult } from './pg-sequence-sync';
import { runSupervisedFullData, type ChildProcessesOptions } from './supervised-full-data';
import { prepareStreamSource, runIncrementalPhase } from './incremental-phase';

export type MigrationEvent =
  | { kind: 'phase'; phase: PhaseName; status: 'running' | 'done' | 'skipped'; detail?: string }
  | { kind: 'plan'; tables: Array<{ name: string; estimatedRows: number; bytes: number }> }
  | { kind: 'captured'; table: string; rows: number; bytes: number }
  | { kind: 'applied'; table: string; rows: number }
  /** The capture's stream position, about once a second (incremental phase). */
  | { kind: 'stream'; capturedLsn: string; published: number; captureLagMs: number | null }
  /** A schema change captured on the source and applied on the destination; `warning` when the user must act. */
  | { kind: 'schema-change'; tag: string; statement: string; warning: string | null }
  /** A table the task did not start with (created or renamed on the source), streamed from then on. */
  | { kind: 'new-table'; table: string; topic: string }
  /** A destination table's key, left for after the load, being built and built (full-data). */
  | { kind: 'key'; table: string; status: 'building' | 'built'; ms?: number }
  /** Positions and lag of the incremental phase, about once a second. */
  | { kind: 'lag'; lag: StreamLag; recordsPerSecond: number; cutoverLsn: string | null }
  | {
      kind: 'process';
      process: string;
      status: 'started' | 'restarting' | 'stopped' | 'done';
      pid?: number;
      detail: string;
    };

export interface FullMigrationOptions {
  spec: TaskSpec;
  kafka: KafkaClientConfig;
  registryUrl: string;
  /** Where schema dumps and work files live (kept between runs so a restart resumes). */
  workDir: string;
  topicPrefix?: string;
  partitions?: number;
  onEvent?: (e: MigrationEvent) => void;
  /** Stops an incremental task's streaming (it fails with TaskStoppedError and resumes when run again). */
  signal?: AbortSignal;
  /**
   * Run the capture and the applier as supervised child processes (restarted after a crash
   * within options.retry.otherMinutes). Without it they run inside this process.
   */
  processes?: ChildProcessesOptions;
  /**
   * Runs after post-data; throws to fail the task (the verify phase). `snapshot` is the exported
   * snapshot the destination was loaded from, still alive when this run took it (null after a
   * resume): reading the source under it compares against exactly what was copied, whatever
   * the source took since. Not run for a task with incremental migration: its destination is
   * verified at cutover, once it has caught up.
   */
  verify?: (
    source: Client,
    destination: Client,
    tables: SelectedTable[],
    snapshot: string | null,
  ) => Promise<string>;
}

export interface FullMigrationResult {
  tables: SelectedTable[];
  rowsCaptured: number;
  schema: { preData?: SchemaStepResult; postData?: SchemaStepResult };
  verify?: string;
  /** Sequences carried at the end of a full-only load, or at cutover. */
  sequences?: SequenceSyncResult;
  /** Incremental tasks: how the stream ended (the position the destination caught up to). */
  incremental?: string;
}

const POLL_MS = 100;

/**
 * Schema pre-data -> full data (snapshot through Kafka) -> schema post-data -> verify, each
 * phase recorded in pgferry.phases on the destination and skipped when a previous run finished
 * it, so a restarted migration resumes instead of starting over. The replication slot stays
 * when incremental migration follows; a full-only task drops it at the end.
 */
export async function runFullMigration(opts: FullMigrationOptions): Promise<FullMigrationResult> {
  const { spec } = opts;
  const emit = opts.onEvent ?? (() => undefined);
  const prefix = opts.topicPrefix ?? spec.kafka.topicPrefix ?? `pgferry.${spec.name}`;
  const src = resolveEndpoint(spec.source, 'source');
  const dst = resolveEndpoint(spec.destination, 'destination');
  const slotName = `pgferry_${spec.name}`;
  let control = await connect(dst, 'destination', { applicationName: 'pgferry controller' });
  let source = await connect(src, 'source', { applicationName: 'pgferry controller' });
  const result: FullMigrationResult = { tables: [], rowsCaptured: 0, schema: {} };
  let exported: ExportedSnapshot | null = null;
  try {
    // Everything that can refuse the task is checked before the first write.
    const selection = await resolveSelection(source, spec.objects);
    if (selection.problems.length)
      throw new ObjectError(
        `task spec selects objects the source does not have:\n  - ${selection.problems.map((p) => `${p.path}: ${p.message}`).join('\n  - ')}`,
      );
    const resumed = await taskExists(control, spec.name);
    if (!resumed && spec.migrationTypes.schema && spec.options.conflictMode === 'report-error') {
      const inTheWay = await existingTargets(control, selection.tables);
      if (inTheWay.length) {
        throw new ObjectError(
          `destination already has ${inTheWay.join(', ')}: drop ${inTheWay.length > 1 ? 'them' : 'it'}, map the table elsewhere with objects.include[].renameTo/renameTables, or set options.conflictMode: ignore to upsert into the existing table${inTheWay.length > 1 ? 's' : ''}`,
        );
      }
    }
    await ensureControlSchema(control);
    let store = new ControlStore(control, spec.name);
    await store.registerTask(spec);
    result.tables = selection.tables;
    emit({
      kind: 'plan',
      tables: selection.tables.map((t) => ({
        name: `${t.schema}.${t.table}`,
        estimatedRows: t.estimatedRows,
        bytes: t.bytes,
      })),
    });
    const migrator = new PgSchemaMigrator({
      source: src,
      destination: dst,
      objects: spec.objects,
      workDir: opts.workDir,
      maintenanceWorkMemMB: spec.options.indexBuildMemoryMB,
    });

    const partitions = opts.partitions ?? 4;
    const group = applierGroup(spec.name);
    const targets = selection.tables.map((t) => ({
      topic: tableTopic(prefix, t.schema, t.table),
      schema: t.targetSchema,
      table: t.targetTable,
      key: tableKey(t),
    }));

    const phase = async (name: PhaseName, enabled: boolean, run: () => Promise<string | void>) => {
      if (!enabled)
        return emit({
          kind: 'phase',
          phase: name,
          status: 'skipped',
          detail: 'not selected in migrationTypes',
        });
      if ((await store.phaseStatus(name)) === 'done')
        return emit({ kind: 'phase', phase: name, status: 'skipped', detail: 'done by an earlier run' });
      emit({ kind: 'phase', phase: name, status: 'running' });
      await store.setPhase(name, 'running');
      try {
        const detail = (await run()) ?? '';
        await store.setPhase(name, 'done', { detail });
        emit({ kind: 'phase', phase: name, status: 'done', detail });
      } catch (err) {
        await store.setPhase(name, 'failed', { error: (err as Error).message }).catch(() => undefined);
        throw err;
      }
    };

    await phase('schema-pre', spec.migrationTypes.schema, async () => {
      await migrator.dump();
      result.schema.preData = await migrator.restorePreData();
      return Object.entries(result.schema.preData.counts)
        .map(([k, n]) => `${n} ${k.toLowerCase()}`)
        .join(', ');
    });

    await phase('full-data', spec.migrationTypes.full, async () => {
      const task = await store.getTask();
      let snapshotName: string | null = null;
      if (!task?.slotName) {
        // Before the slot: pgoutput looks the publication up as of each change's position,
        // so one created after the slot would not exist for the first changes.
        if (spec.migrationTypes.incremental) await prepareStreamSource(source, spec, selection.tables);
        exported = await createSlotWithSnapshot(src, slotName);
        await store.setSlot(exported.slotName, exported.consistentLsn, exported.snapshotName);
        snapshotName = exported.snapshotName;
      }
      const registry = new RegistryClient(opts.registryUrl);
      const deferredKeys: DeferredKeys = {
        task: spec.name,
        keys: await prepareKeyConstraints(source, control, selection.tables),
      };
      // Topics exist before the applier subscribes, so it consumes while the capture reads.
      await prepareStreams(source, opts.kafka, registry, prefix, partitions, selection.tables);
      if (opts.processes) {
        await runSupervisedFullData({
          spec,
          processes: opts.processes,
          kafka: opts.kafka,
          registryUrl: opts.registryUrl,
          topicPrefix: prefix,
          partitions,
          tables: selection.tables,
          snapshotName,
          group,
          targets,
          deferredKeys,
          control,
          emit,
        });
        result.rowsCaptured = (await store.chunkProgress()).reduce((n, t) => n + t.rows, 0);
      } else {
        result.rowsCaptured = await runInProcess(opts, {
          dst,
          src,
          registry,
          prefix,
          partitions,
          group,
          targets,
          store,
          snapshotName,
          tables: selection.tables,
          deferredKeys,
          emit,
        });
      }
      const keys = await buildDeferredKeys(
        () => connect(dst, 'destination', { applicationName: 'pgferry controller' }),
        deferredKeys.keys,
        spec.options.snapshotWorkers,
        (table, ms) => emit({ kind: 'key', table, status: ms === undefined ? 'building' : 'built', ms }),
        spec.options.indexBuildMemoryMB,
      );
      const keysBuilt = keys ? `, ${keys} keys built after the load` : '';
      if (spec.migrationTypes.incremental) return `${result.rowsCaptured} rows${keysBuilt}`;
      await dropSlot(source, slotName);
      // pg_dump --schema-only leaves sequences at their start; a full-only task carries their
      // values now (an incremental task does it at cutover, after the last write).
      const seq = await syncSequences(source, control, spec.objects, selection.tables);
      result.sequences = seq;
      return `${result.rowsCaptured} rows${keysBuilt}, ${seq.synced.length} sequences set${seq.missing.length ? ` (not on the destination: ${seq.missing.join(', ')})` : ''}`;
    });

    await phase('schema-post', spec.migrationTypes.schema, async () => {
      result.schema.postData = await migrator.restorePostData();
      return Object.entries(result.schema.postData.counts)
        .map(([k, n]) => `${n} ${k.toLowerCase()}`)
        .join(', ');
    });

    if (opts.verify && !spec.migrationTypes.incremental) {
      await phase('verify', true, async () => {
        const snap = exported as ExportedSnapshot | null;
        result.verify = await opts.verify!(source, control, selection.tables, snap?.snapshotName ?? null);
        return result.verify;
      });
    }

    if (spec.migrationTypes.incremental) {
      // The exported snapshot is no longer needed: the stream starts where it ended.
      const snap = exported as ExportedSnapshot | null;
      await snap?.connection.end().catch(() => undefined);
      exported = null;
      await phase('incremental', true, async () => {
        result.incremental = await runIncrementalPhase({
          spec,
          kafka: opts.kafka,
          registryUrl: opts.registryUrl,
          prefix,
          partitions,
          tables: selection.tables,
          targets,
          group,
          source,
          control,
          // A server restart while streaming: the controller's connections are opened again, and
          // the phases after this one use the new ones.
          reconnect: async () => {
            const opened = await Promise.allSettled([
              connect(dst, 'destination', { applicationName: 'pgferry controller' }),
              connect(src, 'source', { applicationName: 'pgferry controller' }),
            ]);
            const [c, s] = opened.map((o) => (o.status === 'fulfilled' ? o.value : null));
            if (!c || !s) {
              await Promise.all([c?.end(), s?.end()].map((p) => p?.catch(() => undefined)));
              throw opened.find((o) => o.status === 'rejected')!.reason;
            }
            await Promise.all([control.end().catch(() => undefined), source.end().catch(() => undefined)]);
            [control, source, store] = [c, s, new ControlStore(c, spec.name)];
            return { control, source };
          },
          processes: opts.processes,
          emit,
          signal: opts.signal,
        });
        return result.incremental;
      });
      await phase('cutover', true, async () => {
        // The source has stopped taking writes (the user's side of cutover) and the destination
        // holds every change: sequences follow, then the tables are compared as they are now,
        // as the stream left them: with the tables it gained, without those dropped on the way.
        const { tables, gone } = await cutoverTables(source, control, spec.name, selection.tables);
        const seq = await syncSequences(source, control, spec.objects, tables);
        result.sequences = seq;
        const parts = [
          `${seq.synced.length} sequences set${seq.missing.length ? ` (not on the destination: ${seq.missing.join(', ')})` : ''}`,
        ];
        if (gone.length) parts.push(`not compared, no longer on the source: ${gone.join(', ')}`);
        if (opts.verify) {
          result.verify = await opts.verify(source, control, tables, null);
          parts.push(result.verify);
        }
        return parts.join('; ');
      });
    }
    return result;
  } finally {
    const snap = exported as ExportedSnapshot | null;
    await snap?.connection.end().catch(() => undefined);
    await source.end().catch(() => undefined);
    await control.end().catch(() => undefined);
  }
}

/** Capture and applier in this process; returns the rows this run captured. */
async function runInProcess(
  opts: FullMigrationOptions,
  ctx: {
    src: Endpoint;
    dst: Endpoint;
    registry: RegistryClient;
    prefix: string;
    partitions: number;
    group: string;
    targets: ApplierTarget[];
    store: ControlStore;
    snapshotName: string | null;
    tables: SelectedTable[];
    deferredKeys: DeferredKeys;
    emit: (e: MigrationEvent) => void;
  },
): Promise<number> {
  const applierConn = await connect(ctx.dst, 'destination', { applicationName: 'pgferry applier' });
  const applier = new SnapshotApplier({
    kafka: opts.kafka,
    registry: ctx.registry,
    destination: applierConn,
    connect: () => connect(ctx.dst, 'destination', { applicationName: 'pgferry applier' }),
    group: ctx.group,
    targets: ctx.targets,
    deferredKeys: ctx.deferredKeys,
    onApplied: (t, rows) => ctx.emit({ kind: 'applied', table: `${t.schema}.${t.table}`, rows }),
  });
  try {
    await applier.start();
    const captured = await runSnapshotCapture({
      source: ctx.src,
      sourceDatabase: ctx.src.database,
      kafka: opts.kafka,
      registry: ctx.registry,
      topicPrefix: ctx.prefix,
      partitions: ctx.partitions,
      tables: ctx.tables,
      control: ctx.store,
      snapshotName: ctx.snapshotName,
      chunkRows: opts.spec.options.chunkRows,
      workers: opts.spec.options.snapshotWorkers,
      compression: opts.spec.options.snapshotCompression,
      onProgress: (p) => ctx.emit({ kind: 'captured', ...p }),
    });
    await waitForApplier(
      opts.kafka,
      applier,
      ctx.targets.map((t) => t.topic),
    );
    return captured.rows;
  } finally {
    await applier.stop().catch(() => undefined);
    await applierConn.end().catch(() => undefined);
  }
}

async function taskExists(client: Client, task: string): Promise<boolean> {
  const { rows } = await client.query(`SELECT to_regclass('pgferry.tasks') IS NOT NULL AS has`);
  if (!rows[0].has) return false;
  return (await client.query(`SELECT 1 FROM pgferry.tasks WHERE task = $1`, [task])).rows.length > 0;
}

async function existingTargets(client: Client, tables: SelectedTable[]): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
       FROM unnest($1::text[], $2::text[]) AS t(s, r)
       JOIN pg_namespace n ON n.nspname = t.s JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r AND c.relkind IN ('r', 'p')
      ORDER BY 1`,
    [tables.map((t) => t.targetSchema), tables.map((t) => t.targetTable)],
  );
  return rows.map((r) => r.name as string);
}

/** Resolves once the destination holds every record that is in the topics now. */
async function waitForApplier(
  kafka: KafkaClientConfig,
  applier: SnapshotApplier,
  topics: string[],
): Promise<void> {
  const ends = await withKafkaAdmin(kafka, (admin) => admin.topicEnds(topics));
  for (;;) {
    if (applier.error) throw applier.error;
    const behind = [...ends].filter(([k, high]) => high > 0n && (applier.positions.get(k) ?? 0n) < high);
    if (behind.length === 0) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export function describeTarget(spec: TaskSpec): string {
  return describeEndpoint(resolveEndpoint(spec.destination, 'destination'));
}

/**
 * The tables to compare at cutover: `tables` that are still on the source (a table dropped or
 * renamed mid-stream is gone, and the statement was carried to the destination), and the tables
 * the stream gained after the task started (created on the source in a schema the task takes
 * whole, or renamed there: pgferry.stream_tables), as the source describes them now; those have
 * the same names on the destination (a schema with renames gains none).
 */
async function cutoverTables(
  source: Client,
  control: Client,
  task: string,
  tables: SelectedTable[],
): Promise<{ tables: SelectedTable[]; gone: string[] }> {
  const name = (t: { schema: string; table: string }) => `${t.schema}\u0000${t.table}`;
  const now = new Map(
    (await listTables(source, 'listing the source tables at cutover')).map((t) => [name(t), t]),
  );
  const kept = tables.filter((t) => now.has(name(t)));
  const have = new Set(kept.map(name));
  const gained = (await readStreamTables(control, task))
    .map((t) => now.get(name(t)))
    .filter((t): t is NonNullable<typeof t> => t !== undefined && !have.has(name(t)))
    .map((t) => ({ ...t, targetSchema: t.schema, targetTable: t.table }));
  return {
    tables: [...kept, ...gained],
    gone: tables.filter((t) => !now.has(name(t))).map((t) => quoteQualified(t.schema, t.table)),
  };
}
