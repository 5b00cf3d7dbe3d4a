import type { MigrationContext } from './migration-context';
import { cutoverPhase } from './cutover';
import { fullDataPhase } from './full-data';
import { incrementalPhase } from './incremental';
import type { Phase } from './phase';
import { schemaPostPhase } from './schema-post';
import { schemaPrePhase } from './schema-pre';
import { verifyPhase } from './verify';

/**
 * The phases of a task after its precheck (which the controller runs before the first write),
 * in the order they run; each may count on those before it being done.
 */
export const TASK_PHASES: ReadonlyArray<Phase<MigrationContext>> = [
  schemaPrePhase,
  fullDataPhase,
  schemaPostPhase,
  verifyPhase,
  incrementalPhase,
  cutoverPhase,
];
