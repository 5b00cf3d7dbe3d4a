import type { PhaseName, PhaseStatus } from '@pgferry/control';
import {
  describeError,
  isConnectionLoss,
  redactString,
  retry,
  RetryDeadlineError,
  retryDeadlines,
  type RetryWindows,
} from '@pgferry/core';
import type { Emit } from '../migration-event';

/**
 * Whether a task runs a phase. selected: it runs unless an earlier run finished it.
 * not-selected: the task's migrationTypes leave it out (reported as skipped). not-applicable:
 * the phase has no meaning for this task (verify of an incremental task, the incremental
 * phases of a full-only one), left out without a word.
 */
export type PhaseSelection = 'selected' | 'not-selected' | 'not-applicable';

/**
 * One phase of a task. Its contract, stated beside each: what must hold before it runs (the
 * phases before it in the table are done, in this run or an earlier one), what it records in
 * the control schema beyond its pgferry.phases row, and why running it again after it failed
 * or was interrupted midway is safe (every phase is resumable: it may be run again until done).
 */
export interface Phase<C> {
  readonly name: PhaseName;
  selection(ctx: C): PhaseSelection;
  /** Does the phase's work; the string is the detail recorded with `done` and reported. */
  run(ctx: C): Promise<string>;
}

/** The phase records of the control schema the runner reads and writes (ControlStore). */
export interface PhaseRecords {
  phaseStatus(phase: PhaseName): Promise<PhaseStatus>;
  setPhase(phase: PhaseName, status: PhaseStatus, detail?: unknown): Promise<void>;
}

/** What the runner needs of a context; `records` is read anew for each phase (a phase may reconnect). */
export interface PhaseRunContext {
  readonly records: PhaseRecords;
  readonly emit: Emit;
  /**
   * Opens the controller's connections again (MigrationContext.reconnect). With it, a phase
   * that fails because a server was lost is run again once they are open, within
   * `retryWindows.connectionMinutes` of such failures in a row.
   */
  reconnect?(): Promise<unknown>;
  readonly retryWindows?: RetryWindows;
}

/**
 * Runs `phases` in order. Each selected phase that is not done yet is reported running,
 * recorded running, run, then recorded done with its detail and reported done; a phase done by
 * an earlier run is reported skipped and not run again. A failure is recorded as failed with
 * its message (best effort: the failure itself is what the caller gets) and ends the run: the
 * phases after it wait for the next run, which starts again at the failed one. A phase that
 * failed because a server was lost (isConnectionLoss, not a retry loop that already gave up) is
 * run again in this run once the controller reconnected (ctx.reconnect), as the next run would
 * (every phase is resumable), within retry.connectionMinutes.
 */
export async function runPhases<C extends PhaseRunContext>(
  phases: ReadonlyArray<Phase<C>>,
  ctx: C,
): Promise<void> {
  for (const phase of phases) {
    const name = phase.name;
    const selection = phase.selection(ctx);
    if (selection === 'not-applicable') continue;
    if (selection === 'not-selected') {
      ctx.emit({ kind: 'phase', phase: name, status: 'skipped', detail: 'not selected in migrationTypes' });
      continue;
    }
    if ((await ctx.records.phaseStatus(name)) === 'done') {
      ctx.emit({ kind: 'phase', phase: name, status: 'skipped', detail: 'done by an earlier run' });
      continue;
    }
    ctx.emit({ kind: 'phase', phase: name, status: 'running' });
    await ctx.records.setPhase(name, 'running');
    try {
      const detail = ctx.reconnect
        ? await retry(
            async (attempt) => {
              if (attempt > 1) await ctx.reconnect!();
              return phase.run(ctx);
            },
            {
              ...retryDeadlines(ctx.retryWindows ?? { connectionMinutes: 0, otherMinutes: 0 }),
              initialDelayMs: 1000,
              maxDelayMs: 15_000,
              shouldRetry: (e) => isConnectionLoss(e) && !(e instanceof RetryDeadlineError),
              onRetry: (e, _attempt, delayMs) =>
                ctx.emit({
                  kind: 'phase',
                  phase: name,
                  status: 'running',
                  detail: `lost a connection (${redactString(describeError(e))}); reconnecting and running the phase again in ${(delayMs / 1000).toFixed(1)} s, for up to retry.connectionMinutes (${ctx.retryWindows?.connectionMinutes})`,
                }),
            },
          )
        : await phase.run(ctx);
      await ctx.records.setPhase(name, 'done', { detail });
      ctx.emit({ kind: 'phase', phase: name, status: 'done', detail });
    } catch (err) {
      await ctx.records.setPhase(name, 'failed', { error: (err as Error).message }).catch(() => undefined);
      throw err;
    }
  }
}
