import type { Client } from 'pg';
import { ObjectError, type TaskSpec } from '@pgferry/core';
import {
  connect,
  resolveEndpoint,
  measureRowWidths,
  readTransformPlans,
  resolveSelection,
  tableKey,
  type Endpoint,
  type SelectedTable,
  type TransformPlan,
} from '@pgferry/pg';
import { PgSchemaMigrator } from '@pgferry/schema';
import { tableTopic } from '@pgferry/avro';
import {
  applierGroup,
  ControlStore,
  ensureControlSchema,
  checkRun,
  newRunId,
  readRun,
  readStartOffsets,
  recordStartOffsets,
  recordSpecThrottle,
  startRun,
  taskRegistered,
  type RunIdentity,
} from '@pgferry/control';
import { seenIdentity, type ExportedSnapshot } from '@pgferry/capture';
import { topicEnds } from '../kafka-client';
import { prepareTaskTopics, taskTopicPrefix, taskTopics } from '../task-topics';
import type { ApplierTarget } from '@pgferry/apply';
import type { FullMigrationOptions, FullMigrationResult } from './migration-options';
import type { Emit } from '../migration-event';
import type { PhaseRunContext } from './phase';

const CONTROLLER = { applicationName: 'pgferry controller' };
/** Partitions of a table topic. */
const DEFAULT_PARTITIONS = 4;

/**
 * One run of a task, as its phases see it: the spec, the selected tables and where their rows
 * go, the controller's connections to both servers, the control records, and the result the
 * phases fill in. `source`, `control` and `store` change when a phase reconnects (reconnect):
 * read them from here each time, never keep them.
 */
export class MigrationContext implements PhaseRunContext {
  readonly spec: TaskSpec;
  readonly emit: Emit;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly prefix: string;
  readonly partitions: number;
  readonly slotName: string;
  readonly group: string;
  readonly targets: ApplierTarget[];
  readonly result: FullMigrationResult;
  store: ControlStore;
  readonly retryWindows: TaskSpec['options']['retry'];
  /** The snapshot the full-data phase of this run exported, alive until releaseSnapshot. */
  exported: ExportedSnapshot | null = null;

  private constructor(
    readonly options: FullMigrationOptions,
    public source: Client,
    public control: Client,
    readonly tables: SelectedTable[],
    /** The task's run: its id, and the source and Kafka it was started against. */
    readonly run: RunIdentity,
    /** The destination's view of transformed tables, by source `schema.table`. */
    transforms: ReadonlyMap<string, TransformPlan> = new Map(),
  ) {
    const { spec } = options;
    this.spec = spec;
    this.retryWindows = spec.options.retry;
    this.emit = options.onEvent ?? (() => undefined);
    this.src = resolveEndpoint(spec.source, 'source');
    this.dst = resolveEndpoint(spec.destination, 'destination');
    this.prefix = options.topicPrefix ?? taskTopicPrefix(spec);
    this.partitions = options.partitions ?? DEFAULT_PARTITIONS;
    this.slotName = `pgferry_${spec.name}`;
    this.group = applierGroup(spec.name);
    this.targets = tables.map((t) => ({
      topic: tableTopic(this.prefix, t.schema, t.table),
      schema: t.targetSchema,
      table: t.targetTable,
      key: tableKey(t),
      transform: transforms.get(`${t.schema}.${t.table}`),
      ...(spec.objects.nameCase ? { nameCase: spec.objects.nameCase } : {}),
    }));
    this.store = new ControlStore(control, spec.name);
    this.result = { runId: run.runId, tables, rowsCaptured: 0, schema: {} };
  }

  /**
   * Connects to both servers and checks everything that can refuse the task before its first
   * write: the selection exists on the source, and (a new task with schema migration and
   * conflictMode report-error) no selected table is on the destination already. Then creates
   * the control schema if needed and registers the task (idempotent: a resumed task's spec is
   * replaced by this one). Closes what it opened when it throws.
   */
  static async open(options: FullMigrationOptions): Promise<MigrationContext> {
    const { spec } = options;
    const control = await connect(
      resolveEndpoint(spec.destination, 'destination'),
      'destination',
      CONTROLLER,
    );
    let source: Client | undefined;
    try {
      source = await connect(resolveEndpoint(spec.source, 'source'), 'source', CONTROLLER);
      const selection = await resolveSelection(source, spec.objects);
      if (selection.problems.length)
        throw new ObjectError(
          `task spec selects objects the source does not have:\n  - ${selection.problems.map((p) => `${p.path}: ${p.message}`).join('\n  - ')}`,
        );
      // Over the listed columns, their destination names in objects.nameCase (casePlan).
      const transforms = await readTransformPlans(
        source,
        spec.transforms,
        selection.tables,
        spec.objects.nameCase,
      );
      const resumed = await taskRegistered(control, spec.name);
      if (!resumed && spec.migrationTypes.schema && spec.options.conflictMode === 'report-error') {
        const inTheWay = await existingTargets(control, selection.tables);
        if (inTheWay.length) {
          throw new ObjectError(
            `destination already has ${inTheWay.join(', ')}: drop ${inTheWay.length > 1 ? 'them' : 'it'}, map the table elsewhere with objects.include[].renameTo/renameTables, or set options.conflictMode: ignore to upsert into the existing table${inTheWay.length > 1 ? 's' : ''}`,
          );
        }
      }
      // This source and this Kafka must be the ones the task's run was started against; a task
      // new to the destination starts a new run with them.
      const seen = await seenIdentity(source, options.kafka);
      // The run's topics are judged before anything is written (and, for a known run, once its
      // identity holds: a reset never deletes topics of another Kafka than the run's).
      const known = await readRun(control, spec.name);
      if (known) await checkRun(control, spec.name, seen);
      const runId = known?.runId ?? options.runId ?? newRunId();
      await prepareRunTopics(options, source, control, selection.tables, runId, known !== null);
      await ensureControlSchema(control);
      await new ControlStore(control, spec.name).registerTask(spec);
      await recordSpecThrottle(control, spec.name, spec.options.throttle);
      const run = await startRun(control, spec.name, runId, seen);
      return new MigrationContext(options, source, control, selection.tables, run, transforms);
    } catch (err) {
      await Promise.all([source?.end(), control.end()].map((p) => p?.catch(() => undefined)));
      throw err;
    }
  }

  /**
   * Records where the run's records begin in every partition of `topics` (their ends now), for
   * those not recorded yet: before the run writes its first record there (see recordStartOffsets).
   */
  async recordStartOffsets(topics: readonly string[]): Promise<void> {
    await recordStartOffsets(
      this.control,
      this.spec.name,
      this.group,
      await topicEnds(this.options.kafka, topics),
    );
  }

  get records(): ControlStore {
    return this.store;
  }

  /** The schema phases' pg_dump/pg_restore, working in options.workDir (kept between runs). */
  schemaMigrator(): PgSchemaMigrator {
    return new PgSchemaMigrator({
      source: this.src,
      destination: this.dst,
      objects: this.spec.objects,
      workDir: this.options.workDir,
      maintenanceWorkMemMB: this.spec.options.indexBuildMemoryMB,
      // Shaped in the scratch database before names are cased: by the source's names.
      transforms: this.targets.flatMap((t, i) =>
        t.transform
          ? [{ schema: this.tables[i].schema, table: this.tables[i].table, plan: t.transform }]
          : [],
      ),
    });
  }

  /** A further controller connection to the destination (the caller ends it). */
  connectDestination(): Promise<Client> {
    return connect(this.dst, 'destination', CONTROLLER);
  }

  /**
   * Opens both controller connections again after one was lost (a server restart) and makes
   * them the context's, ending the old ones; the phases after the caller use the new ones.
   * Throws, keeping the old ones, when either cannot be opened.
   */
  async reconnect(): Promise<{ source: Client; control: Client }> {
    const opened = await Promise.allSettled([
      connect(this.dst, 'destination', CONTROLLER),
      connect(this.src, 'source', CONTROLLER),
    ]);
    const [c, s] = opened.map((o) => (o.status === 'fulfilled' ? o.value : null));
    if (!c || !s) {
      await Promise.all([c?.end(), s?.end()].map((p) => p?.catch(() => undefined)));
      throw opened.find((o) => o.status === 'rejected')!.reason;
    }
    // Not awaited: the end of a connection that went silent would wait for ever.
    void this.control.end().catch(() => undefined);
    void this.source.end().catch(() => undefined);
    [this.control, this.source, this.store] = [c, s, new ControlStore(c, this.spec.name)];
    return { control: c, source: s };
  }

  /** Ends the exported snapshot's connection (idempotent): the snapshot is gone after it. */
  async releaseSnapshot(): Promise<void> {
    const snap = this.exported;
    this.exported = null;
    await snap?.connection.end().catch(() => undefined);
  }

  /** Ends every connection of the run. Idempotent; never throws. */
  async close(): Promise<void> {
    await this.releaseSnapshot();
    await this.source.end().catch(() => undefined);
    await this.control.end().catch(() => undefined);
  }
}

/**
 * The run's topics before its first record (task-topics.ts): foreign ones refused or, with
 * kafka.resetTopics, deleted; missing ones created sized for each table's widest row. A known
 * run's topics are its own from its recorded start offsets on.
 */
async function prepareRunTopics(
  options: FullMigrationOptions,
  source: Client,
  control: Client,
  tables: SelectedTable[],
  runId: string,
  known: boolean,
): Promise<void> {
  const { spec } = options;
  const prefix = options.topicPrefix ?? taskTopicPrefix(spec);
  const prepared = await prepareTaskTopics({
    spec,
    kafka: options.kafka,
    prefix,
    tables,
    runId,
    startOffsets: known
      ? await readStartOffsets(
          control,
          spec.name,
          taskTopics(spec, prefix, tables).map((t) => t.name),
        )
      : new Map(),
    rowWidths: await measureRowWidths(source, tables),
    partitions: options.partitions ?? DEFAULT_PARTITIONS,
  });
  if (prepared.reset.length || prepared.warnings.length)
    options.onEvent?.({ kind: 'topics', reset: prepared.reset, warnings: prepared.warnings });
}

/** The selected tables' destination names that the destination has already (quoted). */
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
