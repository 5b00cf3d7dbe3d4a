import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import { connect, describeEndpoint, readServerInfo } from '@pgferry/pg';
import { applyRenames, withScratchDatabase } from './name-mapping';
import { PgDumpDriver } from './pg-dump-driver';
import { exactNamePattern } from './pg-pattern';
import { findPgTools, pgMajor, pgToolSearchFromEnv, type PgTools } from './pg-tools';
import {
  identifyEntries,
  readAvailableExtensions,
  readCFunctions,
  readSelectionCatalog,
  readSelectionExtensions,
} from './schema-catalog';
import { countByKind, planSchema, type SchemaAlert, type SchemaPlan } from './schema-plan';
import { buildDumpSelection, type DumpSelection } from './pg-dump-selection';
import { formatTocList } from './toc';
import type { SavedSchemaPlan, SchemaMigratorOptions } from './types';

const APP = 'pgferry schema';
/** pg_dump learnt --extension (-e) in 14. */
const EXTENSION_SWITCH_VERSION = 140000;

export interface DumpStepContext {
  options: SchemaMigratorOptions;
  secretsDir: string;
}

/**
 * The dump step: reads the source catalog, dumps the selected schema (custom format, no data),
 * splits its table of contents into pre-data and post-data, leaves out what cannot or must not be
 * restored (with alerts), and, when the spec renames schemas or tables, produces the renamed
 * archive through a scratch database (name-mapping.ts). Writes nothing to the source or the
 * destination database (the scratch database is created and dropped). Re-running it replaces
 * the archive and the plan.
 */
export async function runDumpStep(ctx: DumpStepContext): Promise<SavedSchemaPlan> {
  const started = Date.now();
  const { options } = ctx;
  const src = options.source;
  const dst = options.destination;
  const source = await connect(src, 'source', { applicationName: APP });
  let plan: SchemaPlan;
  let selection: DumpSelection;
  let tools: PgTools;
  const extraAlerts: SchemaAlert[] = [];
  const sourceFile = join(options.workDir, 'source.dump');
  let destinationVersion: number;
  let available: Set<string>;
  try {
    const srcCtx = `reading the catalog of source ${describeEndpoint(src)}`;
    const info = await readServerInfo(source, srcCtx);
    const destination = await connect(dst, 'destination', { applicationName: APP });
    try {
      const dstCtx = `reading the catalog of destination ${describeEndpoint(dst)}`;
      destinationVersion = (await readServerInfo(destination, dstCtx)).versionNum;
      available = await readAvailableExtensions(destination, dstCtx);
    } finally {
      await destination.end().catch(() => undefined);
    }
    const catalog = await readSelectionCatalog(source, srcCtx);
    selection = buildDumpSelection(options.objects ?? {}, catalog);
    // Column lists and name case are shaped in the scratch database, as renames are.
    const renaming =
      selection.schemaRenames.length > 0 ||
      selection.tableRenames.length > 0 ||
      selection.columnLists.length > 0 ||
      selection.nameCase !== undefined;
    const minVersion = renaming ? Math.max(info.versionNum, destinationVersion) : info.versionNum;
    tools =
      options.tools ??
      (await findPgTools(
        minVersion,
        options.toolSearch ?? pgToolSearchFromEnv(process.env),
        renaming
          ? `the source runs ${pgMajor(info.versionNum)}, the destination ${pgMajor(destinationVersion)} and renames dump the destination's scratch database`
          : `the source server runs PostgreSQL ${info.version}`,
      ));
    const args = [...selection.args];
    if (options.snapshot !== undefined) args.push(`--snapshot=${options.snapshot}`);
    if (!selection.wholeDatabase) {
      const extensions = await readSelectionExtensions(source, srcCtx, selection.schemas);
      if (tools.versionNum >= EXTENSION_SWITCH_VERSION) {
        for (const e of extensions) args.push('-e', exactNamePattern(e));
      } else {
        for (const e of extensions) {
          extraAlerts.push({
            item: 'extension',
            level: 'alert',
            object: `extension ${e}`,
            message: `the selected objects use extension ${e}, and pg_dump ${tools.version} cannot select extensions (pg_dump 14 or later can): create it on the destination before the pre-data step`,
          });
        }
      }
    }
    const driver = new PgDumpDriver({
      tools,
      secretsDir: ctx.secretsDir,
      signal: options.signal,
      applicationName: APP,
    });
    await driver.dumpSchema(src, 'source', args, sourceFile);
    plan = await planArchive(driver, source, srcCtx, sourceFile, {
      schemas: catalog.schemas,
      owners: catalog.roles,
      cFunctions: await readCFunctions(source, srcCtx),
      available,
      restorePrivileges: options.restoreOwnership ?? false,
    });
  } finally {
    await source.end().catch(() => undefined);
  }
  const renames = { schemas: selection.schemaRenames, tables: selection.tableRenames };
  let dumpFile = sourceFile;
  let restorePlan = plan;
  if (
    renames.schemas.length ||
    renames.tables.length ||
    selection.columnLists.length ||
    selection.nameCase !== undefined
  ) {
    dumpFile = join(options.workDir, 'renamed.dump');
    restorePlan = await renameThroughScratch(ctx, tools, plan, selection, dumpFile, available);
  }
  return {
    format: 1,
    dumpFile,
    dumpVersionNum: tools.versionNum,
    preData: restorePlan.preData,
    postData: restorePlan.postData,
    dumpResult: {
      step: 'dump',
      counts: countByKind([...restorePlan.preData, ...restorePlan.postData]),
      // The renamed archive was made from the planned entries only: what it skips on its own
      // (the scratch database's DATABASE entry) mirrors what the source plan already reports.
      skipped: plan.skipped,
      alerts: [...extraAlerts, ...plan.alerts, ...(restorePlan === plan ? [] : restorePlan.alerts)],
      renames,
      elapsedMs: Date.now() - started,
    },
  };
}

interface PlanContext {
  schemas: string[];
  owners: string[];
  cFunctions: Awaited<ReturnType<typeof readCFunctions>>;
  available: Set<string>;
  restorePrivileges: boolean;
}

/** Lists both sections of `file` and plans them, identifying entries on `client` (the origin). */
async function planArchive(
  driver: PgDumpDriver,
  client: Client,
  context: string,
  file: string,
  pc: PlanContext,
): Promise<SchemaPlan> {
  const hints = { schemas: pc.schemas, owners: pc.owners };
  const toc = await driver.listToc(file, hints);
  const identities = await identifyEntries(client, context, toc.entries);
  return planSchema({
    preData: toc.entries.filter((e) => toc.preData.has(e.dumpId)),
    postData: toc.entries.filter((e) => toc.postData.has(e.dumpId)),
    identities,
    cFunctions: pc.cFunctions,
    availableExtensions: pc.available,
    restorePrivileges: pc.restorePrivileges,
  });
}

/**
 * Restores the planned entries (both sections, no data) into a scratch database on the
 * destination server, applies the renames there, dumps it to `renamedFile` and plans that
 * archive. The scratch database is dropped in every case.
 */
async function renameThroughScratch(
  ctx: DumpStepContext,
  tools: PgTools,
  sourcePlan: SchemaPlan,
  selection: DumpSelection,
  renamedFile: string,
  available: Set<string>,
): Promise<SchemaPlan> {
  const { options } = ctx;
  const driver = new PgDumpDriver({
    tools,
    secretsDir: ctx.secretsDir,
    signal: options.signal,
    applicationName: APP,
  });
  const objects = new Map([...sourcePlan.preData, ...sourcePlan.postData].map((e) => [e.dumpId, e.object]));
  return withScratchDatabase(options.destination, async (scratch) => {
    const where = `scratch database ${scratch.name} on destination ${describeEndpoint(options.destination)}`;
    const listFile = join(options.workDir, 'scratch.list');
    writeFileSync(listFile, formatTocList([...sourcePlan.preData, ...sourcePlan.postData]), { mode: 0o600 });
    await driver.restore(scratch.endpoint, 'destination', join(options.workDir, 'source.dump'), listFile, {
      singleTransaction: true,
      restoreOwnership: options.restoreOwnership,
      tablespaces: options.tablespaces,
      describeEntry: (id) => objects.get(id),
      context: `restoring the schema into ${where} to rename it`,
    });
    const client = await connect(scratch.endpoint, 'destination', { applicationName: APP });
    try {
      await applyRenames(
        client,
        `renaming in ${where}`,
        selection.schemas,
        selection.schemaRenames,
        selection.tableRenames,
        { columnLists: selection.columnLists, nameCase: selection.nameCase },
      );
      await driver.dumpSchema(scratch.endpoint, 'destination', [], renamedFile);
      const catalog = await readSelectionCatalog(client, `reading ${where}`);
      return await planArchive(driver, client, `reading ${where}`, renamedFile, {
        schemas: catalog.schemas,
        owners: catalog.roles,
        cFunctions: [],
        available,
        restorePrivileges: options.restoreOwnership ?? false,
      });
    } finally {
      await client.end().catch(() => undefined);
    }
  });
}
