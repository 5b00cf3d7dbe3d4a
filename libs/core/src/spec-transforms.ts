import { z } from 'zod';

/**
 * The `transforms:` section of a task spec: the destination's view of a source table
 * (docs/transforms.md). Each entry names one source table as `schema.table` and says how its
 * rows look on the destination: columns dropped, renamed, masked, added (SQL expressions over
 * the source row), a row filter (a SQL boolean over the source row), and a module for what the
 * declarative form cannot say. The Kafka topics keep the source's rows; the applier applies the
 * view, so a replay of the topics applies it too.
 */

/** How a masked column is written: sha256 or md5 hex of its text, the text REDACTED, or NULL. */
export const MASKS = ['sha256', 'md5', 'redact', 'null'] as const;
export type MaskKind = (typeof MASKS)[number];

export const transformSchema = z
  .object({
    /** The source table, `schema.table` (names as the catalog spells them, unquoted). */
    table: z.string().regex(/^[^.]+\.[^.]+$/, 'must be schema.table (the source table)'),
    /** Source columns left out of the destination table. */
    drop: z.array(z.string().min(1)).optional(),
    /** { sourceColumn: destinationColumn }; a renamed key column keeps being the key under its new name. */
    rename: z.record(z.string().min(1)).optional(),
    /** { column: sha256 | md5 | redact | null }; the destination column becomes text. */
    mask: z.record(z.enum(MASKS)).optional(),
    /** { newColumn: "SQL expression over the source row" }; its type is the expression's. */
    add: z.record(z.string().min(1)).optional(),
    /** A SQL boolean over the source row: rows for which it is not true are not on the destination. */
    filter: z.string().min(1).optional(),
    /** A CommonJS module (path relative to the working directory) exporting `(row, op) => row | null`. */
    module: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const seen = new Map<string, string>();
    const claim = (column: string, how: string, path: string) => {
      const before = seen.get(column);
      if (before)
        ctx.addIssue({
          code: 'custom',
          path: [path],
          message: `column "${column}" is both in ${before} and in ${how}: give each column one treatment`,
        });
      else seen.set(column, how);
    };
    for (const c of t.drop ?? []) claim(c, 'drop', 'drop');
    for (const c of Object.keys(t.rename ?? {})) claim(c, 'rename', 'rename');
    for (const c of Object.keys(t.mask ?? {})) claim(c, 'mask', 'mask');
    const entries = Object.keys(t).filter((k) => k !== 'table');
    if (!entries.length)
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `the transform of ${t.table} says nothing: give drop, rename, mask, add, filter or module`,
      });
  });

export const transformsSchema = z
  .array(transformSchema)
  .default([])
  .superRefine((list, ctx) => {
    const tables = new Set<string>();
    list.forEach((t, i) => {
      if (tables.has(t.table))
        ctx.addIssue({
          code: 'custom',
          path: [i, 'table'],
          message: `${t.table} has more than one transform: merge them into one entry`,
        });
      tables.add(t.table);
    });
  });

export type TransformSpec = z.infer<typeof transformSchema>;
