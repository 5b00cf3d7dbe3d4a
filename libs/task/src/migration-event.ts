import type { PhaseName, StreamLag } from '@pgferry/control';

/** What a task reports while it runs: from the controller, and from its children over IPC. */
export type MigrationEvent =
  | { kind: 'phase'; phase: PhaseName; status: 'running' | 'done' | 'skipped'; detail?: string }
  | { kind: 'plan'; tables: Array<{ name: string; estimatedRows: number; bytes: number }> }
  | { kind: 'captured'; table: string; rows: number; bytes: number }
  | { kind: 'applied'; table: string; rows: number }
  /** The capture's stream position, about once a second (incremental phase). */
  | { kind: 'stream'; capturedLsn: string; published: number; captureLagMs: number | null }
  /** A schema change captured on the source and applied on the destination; `warning` when the user must act. */
  | { kind: 'schema-change'; tag: string; statement: string; warning: string | null }
  /** The task's Kafka topics before its first record: those reset (deleted, created again) and config warnings. */
  | { kind: 'topics'; reset: string[]; warnings: string[] }
  /** A table the task did not start with (created or renamed on the source), streamed from then on. */
  | { kind: 'new-table'; table: string; topic: string }
  /** A destination table's key, left for after the load, being built and built (full-data). */
  | { kind: 'key'; table: string; status: 'building' | 'built'; ms?: number }
  /** Something the user should look at while the task goes on (the slot's WAL near its bound). */
  | { kind: 'warning'; message: string }
  /** A throttled stage: the task's limits in force, this process's rates, whether it waited (about once a second). */
  | {
      kind: 'throttle';
      stage: 'full' | 'incremental';
      limits: Record<string, number>;
      rates: Record<string, number>;
      throttled: boolean;
    }
  /** Positions and lag of the incremental phase, about once a second. */
  | { kind: 'lag'; lag: StreamLag; recordsPerSecond: number; cutoverLsn: string | null }
  | {
      kind: 'process';
      process: string;
      status: 'started' | 'restarting' | 'stopped' | 'done';
      pid?: number;
      detail: string;
    };

export type Emit = (e: MigrationEvent) => void;
