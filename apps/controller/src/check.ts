import type { Writable } from 'node:stream';
import { join } from 'node:path';
import type { TaskSpec } from '@pgferry/core';
import { kafkaFactsReader } from '@pgferry/task';
import { blocking, formatPrecheckReport, runPrecheck, type PrecheckReport } from '@pgferry/precheck';

export interface PrecheckGate {
  /** True when nothing blocks: no failed item and every alert acknowledged. */
  mayStart: boolean;
  report: PrecheckReport;
}

/**
 * Runs the full precheck (read-only on both servers), prints the report, and says what blocks
 * the start and how to clear it. Acknowledged alert ids come from the spec's
 * `precheck.acknowledge` plus `extraAcks` (the CLI's --ack); `workDir` is the task's (where the
 * embedded broker's data goes). Writes nothing anywhere.
 */
export async function precheckGate(
  spec: TaskSpec,
  out: Writable,
  extraAcks: readonly string[] = [],
  workDir = join('.pgferry', spec.name),
): Promise<PrecheckGate> {
  const say = (s: string) => out.write(`${s}\n`);
  // The Kafka section: real Kafka's topics, or the free disk where the embedded broker's data goes.
  const report = await runPrecheck(spec, { kafka: kafkaFactsReader(spec, join(workDir, 'kafka')) });
  const acks = [...spec.precheck.acknowledge, ...extraAcks];
  const verdict = blocking(report, acks);
  say('precheck');
  say(formatPrecheckReport(report));
  for (const id of verdict.unmatched)
    say(`  note    acknowledged id ${JSON.stringify(id)} matches no alert of this precheck`);
  const acked = report.items.filter((i) => i.level === 'alert' && acks.includes(i.id));
  if (acked.length) say(`  ${acked.length} alert(s) acknowledged: ${acked.map((i) => i.id).join(', ')}`);
  if (!verdict.mayStart) {
    const failed = verdict.blockers.filter((i) => i.level === 'failed');
    const alerts = verdict.blockers.filter((i) => i.level === 'alert');
    if (failed.length) say(`precheck failed: ${failed.length} item(s) must be fixed first`);
    if (alerts.length)
      say(
        `precheck: ${alerts.length} alert(s) need acknowledging, after reading what each risks: ` +
          `add ${alerts.map((i) => `--ack '${i.id.replace(/'/g, `'\\''`)}'`).join(' ')} ` +
          '(or list the ids under precheck.acknowledge in the task spec)',
      );
  }
  return { mayStart: verdict.mayStart, report };
}
