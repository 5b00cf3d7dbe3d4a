import type { Client } from 'pg';
import type { TaskSpec } from '@pgferry/core';
import type { SelectedTable } from '@pgferry/pg';
import type { SchemaStepResult } from '@pgferry/schema';
import type { KafkaClient } from '../kafka-client';
import type { MigrationEvent } from '../migration-event';
import type { SequenceSyncResult } from '../pg-sequence-sync';
import type { ChildProcessesOptions } from '../supervise/task-child';

/** What runFullMigration takes and gives; MigrationContext is built from the options. */

export interface FullMigrationOptions {
  spec: TaskSpec;
  kafka: KafkaClient;
  registryUrl: string;
  /** Where schema dumps and work files live (kept between runs so a restart resumes). */
  workDir: string;
  topicPrefix?: string;
  partitions?: number;
  /**
   * The id a new run of the task gets (the controller chose it first, to name the embedded
   * broker's data directory after it); a random one when not given. A task the destination
   * knows keeps its run.
   */
  runId?: string;
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
  /** The task's run (a new one when the destination did not know the task). */
  runId: string;
  tables: SelectedTable[];
  rowsCaptured: number;
  schema: { preData?: SchemaStepResult; postData?: SchemaStepResult };
  verify?: string;
  /** Sequences carried at the end of a full-only load, or at cutover. */
  sequences?: SequenceSyncResult;
  /** Incremental tasks: how the stream ended (the position the destination caught up to). */
  incremental?: string;
}
