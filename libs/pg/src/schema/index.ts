/** The schema migration (DESIGN phases 2 and 4): pg_dump / pg_restore driven through the TOC. */
export { PgSchemaMigrator } from './schema-migrator';
export type { SchemaMigratorOptions, SchemaStep, SchemaStepResult, SavedSchemaPlan } from './types';
export type { PlannedEntry, SchemaAlert, SchemaSection, SkippedObject } from './schema-plan';
export { buildDumpSelection, RESERVED_SCHEMAS } from './pg-dump-selection';
export type { DumpSelection, SchemaObjectSelection, SchemaRename, TableRename } from './pg-dump-selection';
export {
  findPgTools,
  parsePgToolVersion,
  pgMajor,
  pgToolSearchFromEnv,
  runPgTool,
  type PgToolSearch,
  type PgTools,
} from './pg-tools';
export { exactNamePattern, exactRelationPattern } from './pg-pattern';
export { formatTocList, parseTocListing, type TocEntry, type TocSplitHints } from './toc';
export { PgToolError, PgToolStderr, toolFailureError, type PgToolFailure } from './pg-restore-errors';
export { PgDumpDriver, scrubSecret, type PgDumpDriverOptions, type RestoreOptions } from './pg-dump-driver';
export { libpqEnv, type LibpqEnvOptions } from './pg-env';
export type { ObjectIdentity } from './schema-catalog';
