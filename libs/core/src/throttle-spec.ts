import { z } from 'zod';
import { PgferryError } from './errors';

/**
 * `options.throttle` of a task spec, in the managed service's units. `full` limits the full
 * load where it reads the source (the capture's snapshot workers together): statements the chunk
 * reader sends to the source per second, rows and COPY text bytes read per second. `incremental`
 * limits the change appliers on the destination: changes and record bytes applied per second.
 * An absent field is no limit. Changeable while the task runs (`pgferry throttle`, POST
 * /tasks/:id/throttle); the limits in force are kept in the destination (pgferry.throttle).
 */
const rate = z.number().positive().finite();

export const fullThrottleSchema = z
  .object({
    sourceQueriesPerSecond: rate.optional(),
    rowsPerSecond: rate.optional(),
    bytesPerSecond: rate.optional(),
  })
  .strict();

export const incrementalThrottleSchema = z
  .object({ rowsPerSecond: rate.optional(), bytesPerSecond: rate.optional() })
  .strict();

export type FullThrottle = z.infer<typeof fullThrottleSchema>;
export type IncrementalThrottle = z.infer<typeof incrementalThrottleSchema>;
export interface ThrottleSettings {
  full: FullThrottle;
  incremental: IncrementalThrottle;
}

const FLAT = ['rowsPerSecond', 'bytesPerSecond'] as const;

/**
 * The flat form of earlier versions (`throttle: { rowsPerSecond }`, the applier's limit) is
 * refused rather than guessed at: the message shows the new form with the user's own values.
 */
export const throttleSchema = z
  .object({
    full: fullThrottleSchema.default({}),
    incremental: incrementalThrottleSchema.default({}),
  })
  .passthrough()
  .superRefine((t, ctx) => {
    const extra = Object.keys(t).filter((k) => k !== 'full' && k !== 'incremental');
    const flat = extra.filter((k): k is (typeof FLAT)[number] => (FLAT as readonly string[]).includes(k));
    if (flat.length) {
      const values = flat.map((k) => `${k}: ${JSON.stringify((t as Record<string, unknown>)[k])}`).join(', ');
      ctx.addIssue({
        code: 'custom',
        path: [flat[0]],
        message: `the flat form is gone: write options.throttle: { incremental: { ${values} } } for the change appliers' limit (what it meant before), and/or options.throttle.full: { sourceQueriesPerSecond, rowsPerSecond, bytesPerSecond } for the full load (docs/throttling.md)`,
      });
    }
    const unknown = extra.filter((k) => !(FLAT as readonly string[]).includes(k));
    if (unknown.length)
      ctx.addIssue({
        code: 'unrecognized_keys',
        keys: unknown,
        message: `unknown field ${unknown.join(', ')}`,
      });
  })
  .transform((t): ThrottleSettings => ({ full: t.full, incremental: t.incremental }));

const change = z.number().positive().finite().nullable().optional();

/**
 * A change of the limits in force (`pgferry throttle`, POST /tasks/:id/throttle): per stage and
 * measure, a number sets the limit, null clears it, an absent field keeps it.
 */
export const throttleChangeSchema = z
  .object({
    full: z
      .object({ sourceQueriesPerSecond: change, rowsPerSecond: change, bytesPerSecond: change })
      .strict()
      .optional(),
    incremental: z.object({ rowsPerSecond: change, bytesPerSecond: change }).strict().optional(),
  })
  .strict();

export type ThrottleChange = z.infer<typeof throttleChangeSchema>;

/** `current` with `change` applied (see throttleChangeSchema). */
export function changeThrottle(current: ThrottleSettings, change: ThrottleChange): ThrottleSettings {
  const merge = <T extends object>(base: T, delta: object | undefined): T => {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(delta ?? {})) {
      if (v === null) delete out[k];
      else if (v !== undefined) out[k] = v;
    }
    return out as T;
  };
  return {
    full: merge(current.full, change.full),
    incremental: merge(current.incremental, change.incremental),
  };
}

/** Validates a throttle change; a bad one is a PgferryError (code INVALID_THROTTLE) naming each field and what it takes. */
export function parseThrottleChange(input: unknown): ThrottleChange {
  const result = throttleChangeSchema.safeParse(input);
  if (result.success) return result.data;
  throw new PgferryError(
    `invalid throttle change: ${result.error.issues
      .map(
        (i) =>
          `${i.path.join('.') || '(root)'}: ${i.code === 'unrecognized_keys' ? `unknown field ${i.keys.join(', ')}` : i.message}`,
      )
      .join(
        '; ',
      )}; give { full: { sourceQueriesPerSecond, rowsPerSecond, bytesPerSecond }, incremental: { rowsPerSecond, bytesPerSecond } }, each a number above 0, or null to clear it`,
    { code: 'INVALID_THROTTLE' },
  );
}
