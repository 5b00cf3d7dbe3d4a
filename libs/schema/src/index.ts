export { PgSchemaMigrator } from './schema-migrator';
export { type SavedSchemaPlan, type SchemaStepResult } from './types';
export { type SchemaTransform } from './transform-shape';
