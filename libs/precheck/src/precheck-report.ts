/**
 * The precheck report (DESIGN phase 1): one item per check and object, each passed, failed or
 * alert. Failed items always block the start; an alert blocks until its id is acknowledged.
 */
export type PrecheckLevel = 'passed' | 'failed' | 'alert';

export interface PrecheckItem {
  /**
   * Stable and human-readable: `<check>` or `<check>:<object>`, e.g. `keys:"public"."history"`.
   * The same condition on the same object gets the same id on every run, so an acknowledgement
   * given once keeps holding; ids are unique within a report.
   */
  id: string;
  /** The check, as the CLI shows it: 'source connectivity', 'primary key', ... */
  name: string;
  level: PrecheckLevel;
  /** The object the item is about, quoted as SQL would name it (table, schema, role, slot). */
  object?: string;
  /** What was found, on which object, what it risks, and what to do. Never holds a password. */
  message: string;
  /** The statement(s) or action that clear the item, ready to copy. */
  fix?: string;
}

export interface PrecheckReport {
  /** True when no item failed (alerts may still need acknowledging: see `blocking`). */
  ok: boolean;
  items: PrecheckItem[];
}

/**
 * Builds a report; `ok` is derived, never set by hand. Ids are made unique: a repeated id gets
 * ` #2`, ` #3` ... in report order (checks emit distinct ids; this is the guarantee, not the rule).
 */
export function makeReport(items: PrecheckItem[]): PrecheckReport {
  const seen = new Map<string, number>();
  const unique = items.map((item) => {
    const n = (seen.get(item.id) ?? 0) + 1;
    seen.set(item.id, n);
    return n === 1 ? item : { ...item, id: `${item.id} #${n}` };
  });
  return { ok: unique.every((i) => i.level !== 'failed'), items: unique };
}

export interface BlockingVerdict {
  /** True when nothing blocks: no failed item and every alert acknowledged. */
  mayStart: boolean;
  /** Failed items and unacknowledged alerts, in report order. */
  blockers: PrecheckItem[];
  /** Acknowledged ids that name no alert of this report (typos, or conditions that went away). */
  unmatched: string[];
}

/**
 * Whether the task may start. Failed items always block (acknowledging them has no effect);
 * an alert blocks unless its exact id is in `acknowledged`. Pure.
 */
export function blocking(report: PrecheckReport, acknowledged: readonly string[]): BlockingVerdict {
  const acks = new Set(acknowledged);
  const blockers = report.items.filter(
    (i) => i.level === 'failed' || (i.level === 'alert' && !acks.has(i.id)),
  );
  const alertIds = new Set(report.items.filter((i) => i.level === 'alert').map((i) => i.id));
  return {
    mayStart: blockers.length === 0,
    blockers,
    unmatched: [...acks].filter((id) => !alertIds.has(id)),
  };
}
