import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectError, PgferryError, SpecError } from '@pgferry/core';
import {
  classifyPgError,
  connect,
  describeEndpoint,
  quoteQualified,
  maintenanceMemoryToRaise,
} from '@pgferry/pg';
import { PgDumpDriver } from './pg-dump-driver';
import { findPgTools, pgToolSearchFromEnv, type PgTools } from './pg-tools';
import { readExisting, readExistingPostData } from './schema-catalog';
import { runDumpStep } from './schema-dump-step';
import { countByKind, withoutExisting, type PlannedEntry } from './schema-plan';
import { formatTocList } from './toc';
import type { SavedSchemaPlan, SchemaMigratorOptions, SchemaStepResult } from './types';

const APP = 'pgferry schema';
const PLAN_FILE = 'schema-plan.json';
const PRE_DATA_RESULT = 'pre-data-result.json';

/**
 * The schema migration, in the three steps the controller sequences (DESIGN phases 2 and 4):
 *
 *   const m = new PgSchemaMigrator({ source, destination, objects, workDir });
 *   await m.dump();            // phase 2: dump, plan, name mapping
 *   await m.restorePreData();  // phase 2: types, tables, functions, views ... (no indexes)
 *   ...full data...
 *   await m.restorePostData(); // phase 4: indexes, constraints, FKs, triggers, in parallel
 *
 * State lives in `workDir`, so each step can run in a new process. The class prints nothing:
 * every step returns a SchemaStepResult, and failures are typed errors naming the object and
 * the fix.
 */
export class PgSchemaMigrator {
  private readonly options: SchemaMigratorOptions;

  constructor(options: SchemaMigratorOptions) {
    if (options.jobs !== undefined && (!Number.isInteger(options.jobs) || options.jobs < 1)) {
      throw new SpecError([`schema option jobs must be a positive integer, got ${options.jobs}`]);
    }
    this.options = options;
  }

  private get secretsDir(): string {
    return join(this.options.workDir, 'secrets');
  }

  /**
   * Dumps the selected schema and plans the restore (see runDumpStep). Overwrites the plan of
   * an earlier run and forgets its pre-data result; call it again only before pre-data ran.
   */
  async dump(): Promise<SchemaStepResult> {
    mkdirSync(this.options.workDir, { recursive: true, mode: 0o700 });
    try {
      const plan = await runDumpStep({ options: this.options, secretsDir: this.secretsDir });
      this.writeJson(PLAN_FILE, plan);
      rmSync(join(this.options.workDir, PRE_DATA_RESULT), { force: true });
      return plan.dumpResult;
    } finally {
      rmSync(this.secretsDir, { recursive: true, force: true });
    }
  }

  /**
   * Restores the pre-data section into the destination in one transaction (pg_restore
   * --single-transaction): on failure nothing is left behind and the error names the entry.
   * Schemas and extensions that already exist on the destination are reused, not created.
   * Idempotent: once it succeeded, calling it again returns the first result and changes nothing.
   * Precondition: dump() ran with this workDir.
   */
  async restorePreData(): Promise<SchemaStepResult> {
    const started = Date.now();
    const plan = this.readPlan();
    const done = join(this.options.workDir, PRE_DATA_RESULT);
    if (existsSync(done)) return JSON.parse(readFileSync(done, 'utf8')) as SchemaStepResult;
    const dst = this.options.destination;
    const context = `restoring pre-data into destination ${describeEndpoint(dst)}`;
    const schemaNames = plan.preData
      .filter((e) => e.kind === 'SCHEMA')
      .map((e) => e.identity?.names[0] ?? '');
    const extensionNames = plan.preData
      .filter((e) => e.kind === 'EXTENSION')
      .map((e) => e.identity?.names[0] ?? '');
    const client = await connect(dst, 'destination', { applicationName: APP });
    let existing: Awaited<ReturnType<typeof readExisting>>;
    try {
      existing = await readExisting(client, context, schemaNames, extensionNames);
    } finally {
      await client.end().catch(() => undefined);
    }
    const reused = new Set(
      plan.preData
        .filter(
          (e) =>
            (e.kind === 'SCHEMA' && existing.schemas.has(e.identity?.names[0] ?? '')) ||
            (e.kind === 'EXTENSION' && existing.extensions.has(e.identity?.names[0] ?? '')),
        )
        .map((e) => e.dumpId),
    );
    const { restore, skipped } = withoutExisting(plan.preData, reused, 'exists on the destination; reused');
    await this.withDriver(plan, (driver) =>
      driver.restore(dst, 'destination', plan.dumpFile, this.writeList('pre-data.list', restore), {
        singleTransaction: true,
        restoreOwnership: this.options.restoreOwnership,
        tablespaces: this.options.tablespaces,
        describeEntry: describer(plan),
        context,
      }),
    );
    const result: SchemaStepResult = {
      step: 'pre-data',
      counts: countByKind(restore),
      skipped,
      alerts: [],
      elapsedMs: Date.now() - started,
    };
    this.writeJson(PRE_DATA_RESULT, result);
    return result;
  }

  /**
   * Restores the post-data section with `jobs` parallel workers (pg_restore --jobs), then
   * refreshes the materialized views. Stops at the first failure, naming the entry; objects
   * built before it stay. Resumable and idempotent: indexes, constraints, triggers, rules and
   * policies that already exist with the same identity are skipped, so running it again after
   * a failure (or a success) builds only what is missing.
   * Precondition: restorePreData() succeeded, and the data is in (full data phase).
   */
  async restorePostData(): Promise<SchemaStepResult> {
    const started = Date.now();
    const plan = this.readPlan();
    if (!existsSync(join(this.options.workDir, PRE_DATA_RESULT))) {
      throw new PgferryError(
        `post-data for destination ${describeEndpoint(this.options.destination)}: the pre-data step has not completed in ${this.options.workDir}; run it first`,
        { code: 'SCHEMA_STEP_ORDER' },
      );
    }
    const dst = this.options.destination;
    const context = `restoring post-data into destination ${describeEndpoint(dst)}`;
    const client = await connect(dst, 'destination', { applicationName: APP });
    try {
      const identified = plan.postData.flatMap((e) =>
        e.identity ? [{ dumpId: e.dumpId, identity: e.identity }] : [],
      );
      const exists = await readExistingPostData(client, context, identified);
      const { restore, skipped } = withoutExisting(
        plan.postData,
        exists,
        'exists on the destination (earlier run)',
      );
      if (restore.length > 0) {
        const memory = await maintenanceMemoryToRaise(client, this.options.maintenanceWorkMemMB, context);
        const pgOptions = memory && `-c maintenance_work_mem=${memory}`;
        await this.withDriver(plan, (driver) =>
          driver.restore(dst, 'destination', plan.dumpFile, this.writeList('post-data.list', restore), {
            jobs: this.options.jobs ?? 4,
            restoreOwnership: this.options.restoreOwnership,
            tablespaces: this.options.tablespaces,
            describeEntry: describer(plan),
            context,
            pgOptions,
          }),
        );
      }
      const counts = countByKind(restore);
      if (this.options.refreshMaterializedViews ?? true) {
        const refreshed = await refreshMaterializedViews(client, dst, plan.preData);
        if (refreshed > 0) counts['MATERIALIZED VIEW DATA'] = refreshed;
      }
      return { step: 'post-data', counts, skipped, alerts: [], elapsedMs: Date.now() - started };
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The plan the dump step saved (its archive in `dumpFile`); throws when there is none. */
  readPlan(): SavedSchemaPlan {
    const file = join(this.options.workDir, PLAN_FILE);
    if (!existsSync(file)) {
      throw new PgferryError(
        `schema migration: no plan in ${this.options.workDir}; run the dump step first (or point workDir at the directory it used)`,
        { code: 'SCHEMA_STEP_ORDER' },
      );
    }
    const plan = JSON.parse(readFileSync(file, 'utf8')) as SavedSchemaPlan;
    if (plan.format !== 1 || !existsSync(plan.dumpFile)) {
      throw new ObjectError(
        `schema migration: the plan in ${this.options.workDir} is unreadable or its archive ${plan.dumpFile} is gone; run the dump step again`,
        { code: 'SCHEMA_PLAN_INVALID' },
      );
    }
    return plan;
  }

  /** Runs `fn` with a driver whose pg_restore can read the plan's archive; removes PEM files after. */
  private async withDriver(plan: SavedSchemaPlan, fn: (d: PgDumpDriver) => Promise<void>): Promise<void> {
    const tools: PgTools =
      this.options.tools ??
      (await findPgTools(
        plan.dumpVersionNum,
        this.options.toolSearch ?? pgToolSearchFromEnv(process.env),
        `the archive was written by pg_dump of that version`,
      ));
    const driver = new PgDumpDriver({
      tools,
      secretsDir: this.secretsDir,
      signal: this.options.signal,
      applicationName: APP,
    });
    try {
      await fn(driver);
    } finally {
      rmSync(this.secretsDir, { recursive: true, force: true });
    }
  }

  /** Writes a `pg_restore -L` list file into workDir; returns its path. */
  private writeList(name: string, entries: readonly PlannedEntry[]): string {
    const file = join(this.options.workDir, name);
    writeFileSync(file, formatTocList(entries), { mode: 0o600 });
    return file;
  }

  /** Writes through a temporary file and a rename, so a crash never leaves half a file. */
  private writeJson(name: string, value: unknown): void {
    const file = join(this.options.workDir, name);
    writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }
}

function describer(plan: SavedSchemaPlan): (dumpId: number) => string | undefined {
  const byId = new Map([...plan.preData, ...plan.postData].map((e) => [e.dumpId, e.object]));
  return (dumpId) => byId.get(dumpId);
}

/**
 * REFRESH MATERIALIZED VIEW for every restored materialized view, in dump order (a view that
 * reads another comes after it). pg_dump creates them WITH NO DATA; this fills them from the
 * migrated rows. Returns how many were refreshed.
 */
async function refreshMaterializedViews(
  client: import('pg').Client,
  dst: SchemaMigratorOptions['destination'],
  preData: readonly PlannedEntry[],
): Promise<number> {
  let n = 0;
  for (const e of preData) {
    if (e.kind !== 'MATERIALIZED VIEW' || !e.identity || e.identity.names.length !== 2) continue;
    const [schema, name] = e.identity.names;
    try {
      await client.query(`REFRESH MATERIALIZED VIEW ${quoteQualified(schema, name)}`);
    } catch (err) {
      throw classifyPgError(err, `refreshing ${e.object} on destination ${describeEndpoint(dst)}`);
    }
    n++;
  }
  return n;
}
