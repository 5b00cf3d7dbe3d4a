import type { Endpoint } from '@pgferry/pg';
import type { PgToolSearch, PgTools } from './pg-tools';
import type { PlannedEntry, SchemaAlert, SkippedObject } from './schema-plan';
import type { SchemaObjectSelection, SchemaRename, TableRename } from './pg-dump-selection';
import type { SchemaTransform } from './transform-shape';

export interface SchemaMigratorOptions {
  source: Endpoint;
  destination: Endpoint;
  /** The task spec's `objects`; omitted: every non-system schema (but pgferry's own). */
  objects?: SchemaObjectSelection;
  /**
   * A directory that survives between the steps (and process restarts): it holds the dump, the
   * plan and the list files. Created with mode 0700 when missing. The caller removes it when the
   * task is released.
   */
  workDir: string;
  /**
   * Transformed tables, by their source names: the schema gives them the destination's
   * shape (transform-shape.ts), through the scratch database renames use.
   */
  transforms?: SchemaTransform[];
  /** Parallel jobs for the post-data restore (pg_restore --jobs). Default 4. */
  jobs?: number;
  /**
   * maintenance_work_mem, in MB, of the post-data restore's connections, when the destination's
   * own setting is lower (never lowered): index builds sort in memory. Default: the server's.
   */
  maintenanceWorkMemMB?: number;
  /**
   * Restore owners and privileges (ALTER ... OWNER, GRANT). Default false: the destination user
   * owns everything it creates, which works when the source's roles do not exist there.
   */
  restoreOwnership?: boolean;
  /** Keep tablespace assignments. Default false: objects go to the default tablespace. */
  tablespaces?: boolean;
  /** REFRESH each materialized view at the end of post-data (after the data). Default true. */
  refreshMaterializedViews?: boolean;
  /**
   * An exported snapshot of the source (pg_export_snapshot, or the one the replication slot
   * exported) to dump the schema as of: schema and data then describe the same moment. The
   * transaction that exported it must stay open until the dump step returns.
   */
  snapshot?: string;
  /** pg_dump / pg_restore to use; found through `toolSearch` when omitted. */
  tools?: PgTools;
  /** Where to look for the tools; the app passes pgToolSearchFromEnv(process.env). */
  toolSearch?: PgToolSearch;
  /** Stops a running pg_dump / pg_restore; the step then throws a CANCELLED error. */
  signal?: AbortSignal;
}

export type SchemaStep = 'dump' | 'pre-data' | 'post-data';

/** What one step did. The library prints nothing; callers report from this. */
export interface SchemaStepResult {
  step: SchemaStep;
  /**
   * Objects per pg_dump kind (TABLE, INDEX, FK CONSTRAINT ...): planned for restore in the dump
   * step, restored in the pre-data and post-data steps. Post-data also counts refreshed
   * materialized views as MATERIALIZED VIEW DATA.
   */
  counts: Record<string, number>;
  /** Entries not restored, each with its reason. */
  skipped: SkippedObject[];
  /** The skipped objects a user must act on (install a package, drop an object ...). */
  alerts: SchemaAlert[];
  /** Renames applied (dump step). */
  renames?: { schemas: SchemaRename[]; tables: TableRename[] };
  elapsedMs: number;
}

/** workDir/schema-plan.json: written by the dump step, read by the restore steps. */
export interface SavedSchemaPlan {
  format: 1;
  /** The archive the restores read: the source dump, or the renamed one. */
  dumpFile: string;
  /** server_version_num of the pg_dump that wrote dumpFile (pg_restore must be as new). */
  dumpVersionNum: number;
  preData: PlannedEntry[];
  postData: PlannedEntry[];
  dumpResult: SchemaStepResult;
}
