import type { Client } from 'pg';
import { quoteIdent, quoteQualified, type TransformPlan } from '@pgferry/pg';

/** A transformed source table (the source's schema and table names), with its view. */
export interface SchemaTransform {
  schema: string;
  table: string;
  plan: TransformPlan;
}

/**
 * Gives each transformed table the destination's shape, in the scratch database the dump step
 * restored the source's schema into, within the caller's transaction (applyRenames: after the
 * column lists dropped the unlisted columns, before the names are cased and renamed, so tables
 * and source columns have the source's names here), so that the dump made from it carries the
 * shape into pre-data and post-data alike:
 * - an added column gets the type the server gives its expression over the table (asked
 *   through a temporary view before anything changes);
 * - a masked column becomes text (its default dropped: the values always arrive masked) and, for
 *   mask null, nullable;
 * - a renamed column is renamed (indexes, constraints and views follow it);
 * - a dropped column is dropped with what depends on it alone (CASCADE: its indexes, its
 *   constraints, views that read it).
 * `step` is told each statement's purpose before it runs, for the caller's error.
 */
export async function shapeTransformedTables(
  client: Client,
  transforms: readonly SchemaTransform[],
  step: (what: string) => void,
): Promise<void> {
  for (const { schema, table, plan } of transforms) {
    const target = quoteQualified(schema, table);
    const types = new Map<string, string>();
    for (const o of plan.output.filter((x) => x.from === 'add')) {
      step(`finding the type of added column ${quoteIdent(o.name)} = ${o.expr} over ${target}`);
      await client.query(`CREATE TEMP VIEW pgferry_probe AS SELECT ${o.expr} AS v FROM ${target}`);
      const { rows } = await client.query(
        `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
          WHERE attrelid = 'pgferry_probe'::regclass AND attname = 'v'`,
      );
      types.set(o.name, rows[0].type);
      await client.query('DROP VIEW pgferry_probe');
    }
    for (const o of plan.output.filter((x) => x.from === 'mask')) {
      const c = quoteIdent(o.source!);
      step(`making masked column ${c} of ${target} text`);
      await client.query(
        `ALTER TABLE ${target} ALTER COLUMN ${c} DROP DEFAULT, ALTER COLUMN ${c} TYPE text USING ${c}::text`,
      );
      if (o.expr === 'NULL::text')
        await client.query(`ALTER TABLE ${target} ALTER COLUMN ${c} DROP NOT NULL`);
    }
    for (const o of plan.output.filter((x) => x.source !== undefined && x.source !== x.name)) {
      step(`renaming column ${quoteIdent(o.source!)} of ${target} to ${quoteIdent(o.name)}`);
      await client.query(
        `ALTER TABLE ${target} RENAME COLUMN ${quoteIdent(o.source!)} TO ${quoteIdent(o.name)}`,
      );
    }
    const kept = new Set(plan.output.map((o) => o.source).filter((s) => s !== undefined));
    for (const c of plan.source.filter((s) => !kept.has(s.name))) {
      step(`dropping column ${quoteIdent(c.name)} of ${target}`);
      await client.query(`ALTER TABLE ${target} DROP COLUMN ${quoteIdent(c.name)} CASCADE`);
    }
    for (const [name, type] of types) {
      step(`adding column ${quoteIdent(name)} ${type} to ${target}`);
      await client.query(`ALTER TABLE ${target} ADD COLUMN ${quoteIdent(name)} ${type}`);
    }
  }
}
