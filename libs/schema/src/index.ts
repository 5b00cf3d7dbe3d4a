export { PgSchemaMigrator } from './schema-migrator';
export { type SchemaStepResult } from './types';
