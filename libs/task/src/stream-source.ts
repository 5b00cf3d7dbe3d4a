import type { Client } from 'pg';
import type { TaskSpec } from '@pgferry/core';
import { newTableRule, type SelectedTable } from '@pgferry/pg';
import {
  ensureHeartbeatTable,
  ensurePublication,
  installDdlCapture,
  publicationName,
} from '@pgferry/capture';

/**
 * The task's objects on the source for streaming: the heartbeat table, the DDL capture (event
 * triggers need a superuser; without one the precheck's ddl-capture alert was acknowledged and
 * schema changes are made on the destination first; it also adds tables created later in a
 * schema the task takes whole to the publication), and the publication over the selected
 * tables and those two. Idempotent.
 */
export async function prepareStreamSource(
  source: Client,
  spec: TaskSpec,
  tables: SelectedTable[],
): Promise<void> {
  await ensureHeartbeatTable(source, spec.name);
  const { rows } = await source.query<{ su: boolean }>(
    `SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user`,
  );
  if (rows[0]?.su) {
    // A task without include takes every user schema, those created later too.
    const scope = spec.objects.include
      ? [...new Set([...spec.objects.include.map((i) => i.schema), ...tables.map((t) => t.schema)])]
      : { allBut: (spec.objects.exclude ?? []).filter((e) => !e.tables).map((e) => e.schema) };
    await installDdlCapture(source, spec.name, scope, {
      publication: publicationName(spec.name),
      rule: newTableRule(spec.objects),
    });
  }
  await ensurePublication(source, spec.name, tables);
}
