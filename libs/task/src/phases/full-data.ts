import { registryClient } from '../kafka-client';
import type { Client } from 'pg';
import { quoteLiteral } from '@pgferry/pg';
import { createSlotWithSnapshot, dropSlot, prepareStreams, type ExportedSnapshot } from '@pgferry/capture';
import { buildDeferredKeys, prepareKeyConstraints, type DeferredKeys } from '@pgferry/apply';
import { readStartOffsets } from '@pgferry/control';
import type { MigrationContext } from './migration-context';
import type { ApplierSettings, CaptureSettings } from '../process-config';
import { describeSequences, syncSequences } from '../pg-sequence-sync';
import { prepareStreamSource } from '../stream-source';
import { runFullDataChildren } from './full-data-children';
import { runFullDataInProcess } from './full-data-in-process';
import type { Phase } from './phase';
import { manifestSchema, publishReplayManifest } from '../replay-manifest';

/**
 * Full data: the replication slot created with an exported snapshot (the first run only), every
 * selected table read under that snapshot and sent through Kafka by the capture, applied by the
 * applier, then the keys left for after the load built. As children (options.processes) or in
 * this process, from the same settings. A full-only task's slot is temporary: it ends with the
 * snapshot's connection (after verify, or when the task fails); the task sets the destination's
 * sequences; an incremental one keeps the slot, whose stream starts where the
 * snapshot ends.
 * Before: the destination tables exist (schema-pre, or the user's). Records: the slot and
 * snapshot in pgferry.tasks, chunk plan and progress in pgferry.chunks, the applied offsets in
 * pgferry.offsets. Resumable: a run after a failure keeps the slot, sends only the chunks not
 * done yet (read under fresh snapshots: the exported one died with the run), and the applier
 * goes on from its stored offsets.
 */
export const fullDataPhase: Phase<MigrationContext> = {
  name: 'full-data',
  selection: (ctx) => (ctx.spec.migrationTypes.full ? 'selected' : 'not-selected'),
  async run(ctx) {
    const { spec, result } = ctx;
    const task = await ctx.store.getTask();
    // Run again in this run after a lost connection (runPhases): the snapshot exported by the
    // first attempt is kept while its connection lives; a source restart ended it, and the
    // chunks not done are read under fresh snapshots, as a resumed run reads them.
    if (ctx.exported && !(await snapshotAlive(ctx.source, ctx.exported))) await ctx.releaseSnapshot();
    let snapshotName: string | null = ctx.exported?.snapshotName ?? null;
    if (!task?.slotName) {
      // Before the slot: pgoutput looks the publication up as of each change's position,
      // so one created after the slot would not exist for the first changes.
      if (spec.migrationTypes.incremental) await prepareStreamSource(ctx.source, spec, ctx.tables);
      // A full-only task needs the slot only for its snapshot: a temporary one, gone with it.
      ctx.exported = await createSlotWithSnapshot(ctx.src, ctx.slotName, {
        temporary: !spec.migrationTypes.incremental,
      });
      await ctx.store.setSlot(ctx.exported.slotName, ctx.exported.consistentLsn, ctx.exported.snapshotName);
      snapshotName = ctx.exported.snapshotName;
    }
    const registry = registryClient(spec, ctx.options.registryUrl);
    const deferredKeys: DeferredKeys = {
      task: spec.name,
      keys: await prepareKeyConstraints(ctx.source, ctx.control, ctx.tables, ctx.spec.objects.nameCase),
    };
    // Topics exist before the applier subscribes, so it consumes while the capture reads.
    await prepareStreams(ctx.source, ctx.options.kafka, registry, ctx.prefix, ctx.partitions, ctx.tables);
    // The applier starts there, not at 0: on real Kafka the topics may hold an older run's records.
    await ctx.recordStartOffsets(ctx.targets.map((t) => t.topic));
    await publishTaskRecord(ctx);
    const common = { spec, registryUrl: ctx.options.registryUrl, topicPrefix: ctx.prefix };
    const capture: CaptureSettings = {
      ...common,
      role: 'capture',
      partitions: ctx.partitions,
      tables: ctx.tables,
      snapshotName,
    };
    const applier: ApplierSettings = {
      ...common,
      role: 'applier',
      group: ctx.group,
      targets: ctx.targets,
      deferredKeys,
    };
    const { processes } = ctx.options;
    if (processes) {
      await runFullDataChildren({
        spec,
        processes,
        capture,
        applier,
        kafka: ctx.options.kafka,
        control: ctx.control,
        emit: ctx.emit,
      });
      result.rowsCaptured = (await ctx.store.chunkProgress()).reduce((n, t) => n + t.rows, 0);
    } else {
      result.rowsCaptured = await runFullDataInProcess({
        capture,
        applier,
        kafka: ctx.options.kafka,
        registry,
        store: ctx.store,
        emit: ctx.emit,
      });
    }
    const keys = await buildDeferredKeys(
      () => ctx.connectDestination(),
      deferredKeys.keys,
      spec.options.snapshotWorkers,
      (table, ms) => ctx.emit({ kind: 'key', table, status: ms === undefined ? 'building' : 'built', ms }),
      spec.options.indexBuildMemoryMB,
    );
    const keysBuilt = keys ? `, ${keys} keys built after the load` : '';
    if (spec.migrationTypes.incremental) return `${result.rowsCaptured} rows${keysBuilt}`;
    await dropSlot(ctx.source, ctx.slotName);
    // pg_dump --schema-only leaves sequences at their start; a full-only task carries their
    // values now (an incremental task does it at cutover, after the last write).
    const seq = await syncSequences(ctx.source, ctx.control, spec.objects, ctx.tables);
    result.sequences = seq;
    return `${result.rowsCaptured} rows${keysBuilt}, ${describeSequences(seq)}`;
  },
};

/**
 * What `pgferry replay` needs beyond the table topics, published with them on
 * `<prefix>.schema` before the first snapshot record (replay-manifest.ts): the run, its start
 * offsets, the tables and the schema dump. A resumed run publishes it again (readers take the
 * newest); a run whose schema work dir is gone publishes it without the schema.
 */
async function publishTaskRecord(ctx: MigrationContext): Promise<void> {
  const { spec } = ctx;
  const starts = await readStartOffsets(
    ctx.control,
    spec.name,
    ctx.targets.map((t) => t.topic),
  );
  let schema = null;
  if (spec.migrationTypes.schema) {
    try {
      schema = manifestSchema(ctx.schemaMigrator().readPlan());
    } catch {
      schema = null;
    }
  }
  await publishReplayManifest(ctx.options.kafka, {
    format: 1,
    task: spec.name,
    runId: ctx.run.runId,
    prefix: ctx.prefix,
    publishedAt: new Date().toISOString(),
    source: { system: ctx.run.sourceSystem, database: ctx.run.sourceDatabase },
    snapshotLsn: (await ctx.store.getTask())?.consistentLsn ?? null,
    consistency: spec.options.consistency,
    targets: ctx.targets,
    startOffsets: Object.fromEntries([...starts].map(([k, v]) => [k, v.toString()])),
    schema,
  });
}

/**
 * Whether `exported` can still be imported (a transaction of `source` imports it and rolls
 * back). Not a query on the exporting connection: any command there ends the snapshot.
 */
async function snapshotAlive(source: Client, exported: ExportedSnapshot): Promise<boolean> {
  try {
    await source.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await source.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(exported.snapshotName)}`);
    return true;
  } catch {
    return false;
  } finally {
    await source.query('ROLLBACK').catch(() => undefined);
  }
}
