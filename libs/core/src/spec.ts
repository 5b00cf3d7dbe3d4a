import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { throttleSchema } from './throttle-spec';
import { SpecError } from './errors';
import { expandEnvReferences } from './spec-env';
import { transformsSchema } from './spec-transforms';

/**
 * The task spec: one YAML or JSON file describes one migration. Every field has a default except
 * the two endpoints; `parseTaskSpec` returns a fully defaulted, validated spec or throws a
 * SpecError listing every problem as `<path>: <what is wrong>`.
 */

const NAME = /^[a-z][a-z0-9_]{0,39}$/;

const sslSchema = z
  .object({
    mode: z.enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']).default('prefer'),
    /** PEM text or a path to a PEM file. */
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    /** Name the server certificate must carry when it differs from `host` (verify-full). */
    serverName: z.string().optional(),
  })
  .strict()
  .refine((s) => (s.cert === undefined) === (s.key === undefined), {
    message: 'cert and key must be given together (client certificate authentication)',
  })
  .refine((s) => (s.mode !== 'verify-ca' && s.mode !== 'verify-full' ? true : s.ca !== undefined), {
    message:
      'mode verify-ca and verify-full need ca (the certificate authority that signed the server certificate)',
  });

/**
 * TLS to Kafka brokers: ca (PEM text or a path to a PEM file: the CAs to trust instead of the
 * system's), cert and key (a client certificate, for brokers with ssl.client.auth=required),
 * serverName (the name the brokers' certificates carry, when it is not the host connected to).
 * `{}` is TLS with the system's CAs.
 */
const tlsTransportSchema = z
  .object({
    ca: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    serverName: z.string().min(1).optional(),
  })
  .strict()
  .refine((t) => (t.cert === undefined) === (t.key === undefined), {
    message: 'cert and key must be given together (client certificate authentication)',
  });

export const endpointSchema = z
  .object({
    /** postgres://user:password@host:port/database?sslmode=...; fields below override its parts. */
    url: z.string().optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    /**
     * A file whose first line is the password (mode 0600, like ~/.pgpass). Without password,
     * passwordFile or a password in url, PGPASSWORD and then PGPASSFILE (~/.pgpass) are used.
     */
    passwordFile: z.string().min(1).optional(),
    ssl: sslSchema.optional(),
  })
  .strict()
  .refine((e) => e.url !== undefined || e.host !== undefined, {
    message: 'give url, or host (with port, database, user, password)',
  })
  .refine((e) => e.passwordFile === undefined || e.password === undefined, {
    message: 'give password or passwordFile, not both',
  });

/** The operations an include entry can select (objects.include[].operations). */
export const OPERATIONS = ['insert', 'update', 'delete', 'truncate', 'ddl'] as const;
export type Operation = (typeof OPERATIONS)[number];

const tableSelection = z
  .object({
    schema: z.string().min(1),
    /** Omitted: every table of the schema, including tables created later. */
    tables: z.array(z.string().min(1)).min(1).optional(),
    /** Destination schema name; defaults to the same name. */
    renameTo: z.string().min(1).optional(),
    /** Per table destination names: { sourceTable: destinationTable }. */
    renameTables: z.record(z.string().min(1)).optional(),
    /**
     * Per table row filter, one SQL expression over the source table's columns (docs/filters.md):
     * the snapshot reads only matching rows and the stream carries only changes to them.
     */
    where: z.record(z.string().min(1)).optional(),
    /** Per table column list (the key columns must be in it): the destination gets only these. */
    columns: z.record(z.array(z.string().min(1)).min(1)).optional(),
    /** Changes carried for the entry's tables; omitted: all of them. */
    operations: z.array(z.enum(OPERATIONS)).min(1).optional(),
  })
  .strict();

/** objects.nameCase: the case of schemas, tables and columns created on the destination. */
export const NAME_CASES = ['source', 'lower', 'upper'] as const;
export type NameCase = (typeof NAME_CASES)[number];

export const taskSpecSchema = z
  .object({
    name: z
      .string()
      .regex(
        NAME,
        'must start with a lower-case letter and hold only a-z, 0-9 and _, at most 40 characters (it names the replication slot pgferry_<name>)',
      ),
    source: endpointSchema,
    destination: endpointSchema,
    migrationTypes: z
      .object({
        schema: z.boolean().default(true),
        full: z.boolean().default(true),
        incremental: z.boolean().default(false),
      })
      .strict()
      .default({})
      .refine((m) => m.schema || m.full || m.incremental, {
        message: 'choose at least one of schema, full, incremental',
      }),
    /** Omitted: every table in every non-system schema. */
    objects: z
      .object({
        include: z.array(tableSelection).min(1).optional(),
        exclude: z
          .array(
            tableSelection.omit({
              renameTo: true,
              renameTables: true,
              where: true,
              columns: true,
              operations: true,
            }),
          )
          .optional(),
        /** Omitted: source (names as on the source). */
        nameCase: z.enum(NAME_CASES).optional(),
      })
      .strict()
      .default({}),
    /** The destination's view of source tables (spec-transforms.ts, docs/transforms.md). */
    transforms: transformsSchema,
    kafka: z
      .object({
        /** Omitted: the embedded broker is started. */
        brokers: z
          .array(z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port'))
          .min(1)
          .optional(),
        schemaRegistryUrl: z.string().url().optional(),
        topicPrefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,100}$/, 'may hold only letters, digits, ".", "_" and "-"')
          .optional(),
        /** Shorthand for `tls: {}` (TLS, the system's CAs). */
        ssl: z.boolean().default(false),
        /** TLS to every broker; see kafkaTransportSchema. */
        tls: tlsTransportSchema.optional(),
        /**
         * Topics pgferry would use that hold records of another run (or of no pgferry run):
         * false (the default) refuses to start, naming them; true deletes and recreates them.
         * pgferry never deletes a topic otherwise (see docs/kafka-topics.md).
         */
        resetTopics: z.boolean().default(false),
        /** retention.ms the task's topics are created with; -1 (the default) keeps every record, as replay needs. */
        retentionMs: z
          .number()
          .int()
          .refine((v) => v === -1 || v >= 60_000, 'must be -1 (keep forever) or at least 60000 ms')
          .default(-1),
        /** max.message.bytes of the table topics; default: sized from the widest row the precheck measures. */
        maxMessageBytes: z.number().int().min(1024).optional(),
        sasl: z
          .object({
            mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
            username: z.string().min(1),
            password: z.string(),
          })
          .strict()
          .optional(),
        /**
         * SASL without TLS sends the password (PLAIN) or a proof an eavesdropper can attack
         * offline (SCRAM) in clear: refused unless this is true (a network you trust).
         */
        allowPlaintextSasl: z.boolean().default(false),
        /** How to reach kafka.schemaRegistryUrl: HTTP basic auth, and the CA of an https URL. */
        schemaRegistry: z
          .object({
            username: z.string().min(1).optional(),
            password: z.string().optional(),
            /** PEM text or a path to a PEM file of the CA that signed the registry's certificate. */
            ca: z.string().min(1).optional(),
            serverName: z.string().min(1).optional(),
          })
          .strict()
          .refine((r) => (r.username === undefined) === (r.password === undefined), {
            message: 'username and password must be given together (HTTP basic authentication)',
          })
          .optional(),
      })
      .strict()
      .default({})
      .superRefine((k, ctx) => {
        if (k.sasl && !k.tls && !k.ssl && !k.allowPlaintextSasl)
          ctx.addIssue({
            code: 'custom',
            path: ['sasl'],
            message:
              'SASL without TLS sends the credentials in clear: give kafka.tls (ca, and cert and key where the brokers ask for a client certificate), or set kafka.allowPlaintextSasl: true on a network you trust',
          });
      }),
    precheck: z
      .object({
        /**
         * Ids of precheck alerts (as `pgferry check` prints them, e.g. `keys:"public"."history"`)
         * that the user has read and accepts; an alert blocks the start until acknowledged.
         * Failed items cannot be acknowledged.
         */
        acknowledge: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({}),
    options: z
      .object({
        /** report-error: precheck fails if a destination table exists; ignore: rows are upserted by key. */
        conflictMode: z.enum(['report-error', 'ignore']).default('report-error'),
        /** per-key: each row's changes in order; transactional: whole source transactions in commit order. */
        consistency: z.enum(['per-key', 'transactional']).default('per-key'),
        /** strict: a record that cannot be applied stops the task; dead-letter: it goes to <prefix>.dlq. */
        onError: z.enum(['strict', 'dead-letter']).default('strict'),
        /** Connections reading snapshot chunks at once; also the verify's connections per server. */
        snapshotWorkers: z.number().int().min(1).max(64).default(4),
        chunkRows: z.number().int().min(1000).default(500_000),
        /**
         * maintenance_work_mem, in MB, of the sessions that build keys and indexes after the load
         * (the keys left for after the load, one per snapshot worker at once; the post-data
         * restore, one per job): the destination's own setting is raised to this, never lowered.
         * 0 keeps the destination's setting. An in-memory sort builds a 2M-row key about a
         * quarter faster than PostgreSQL's default of 64MB.
         */
        indexBuildMemoryMB: z.number().int().min(0).max(1_048_576).default(256),
        /**
         * Compression of the snapshot's record batches on Kafka (compression.type): lz4 stores
         * and moves them in about a fifth of the bytes (a bench run: 127 MB instead of 666 MB),
         * and every Kafka client reads it (kafkajs with an LZ4 codec plugin). none where a
         * consumer cannot. Change batches, small and sent as they come, are not compressed.
         * Where lz4-napi has no binary for the platform, the snapshot goes uncompressed and the
         * precheck raises the alert `compression` (acknowledge it, or choose none).
         */
        snapshotCompression: z.enum(['lz4', 'none']).default('lz4'),
        /** Full-load and incremental rate limits (throttle-spec.ts, docs/throttling.md). */
        throttle: throttleSchema.default({}),
        retry: z
          .object({
            connectionMinutes: z.number().positive().default(720),
            otherMinutes: z.number().positive().default(10),
          })
          .strict()
          .default({}),
        lagBoundSeconds: z.number().positive().default(5),
        /**
         * migrate prints a WARNING when the source keeps more WAL than this for the task's slot
         * (pg_current_wal_lsn() - restart_lsn: what the stream has not confirmed yet), and
         * whenever the slot's wal_status is unreserved (max_slot_wal_keep_size is near).
         */
        walRetainedAlertBytes: z.number().int().positive().optional(),
        /**
         * The controller's watchdog: a capture or applier child whose position has not moved for
         * this long while work waits for it (a connection gone silent without closing) is killed
         * and started again, as after a crash (within retry.otherMinutes).
         */
        stallSeconds: z.number().positive().default(120),
        /**
         * Schema changes made on the source during the incremental phase, replayed on the
         * destination (docs/schema-changes.md). role: a destination role each replayed statement
         * runs as (SET LOCAL ROLE, which the destination user must be allowed: a member of it),
         * given rights on the migrated schemas only, so no statement can change anything else
         * there. Omitted: the destination user runs them.
         */
        schemaChanges: z
          .object({ role: z.string().min(1).optional() })
          .strict()
          .default({}),
        /**
         * Where the incremental phase runs. capture: controller (a supervised child of migrate)
         * or external (`pgferry capture --spec` on other machines or containers; one streams at
         * a time, the others wait on a lease in the control schema and take over when it
         * lapses). appliers: how many change-applier processes migrate supervises, one Kafka
         * consumer group sharing the partitions (per-key consistency; transactional takes 1);
         * 0 when they run elsewhere (`pgferry applier --spec`). The full load always runs under
         * migrate.
         */
        stream: z
          .object({
            capture: z.enum(['controller', 'external']).default('controller'),
            appliers: z.number().int().min(0).max(64).default(1),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.options.consistency === 'transactional' && spec.options.stream.appliers > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['options', 'stream', 'appliers'],
        message:
          'options.consistency transactional applies whole transactions across every partition in one applier: set options.stream.appliers to 1 (or 0 with one pgferry applier elsewhere)',
      });
  });

export type TaskSpec = z.infer<typeof taskSpecSchema>;
export type TaskSpecInput = z.input<typeof taskSpecSchema>;
export type EndpointSpec = z.infer<typeof endpointSchema>;
export type SslSpec = NonNullable<EndpointSpec['ssl']>;
export type KafkaTlsSpec = z.infer<typeof tlsTransportSchema>;

function formatPath(path: (string | number)[]): string {
  if (path.length === 0) return '(root)';
  return path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part),
    '',
  );
}

function formatIssue(issue: z.ZodIssue): string {
  const where = formatPath(issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return issue.received === 'undefined'
        ? `${where}: is required`
        : `${where}: expected ${issue.expected}, got ${issue.received}`;
    case 'unrecognized_keys':
      return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_enum_value':
      return `${where}: must be one of ${issue.options.map((o) => `"${String(o)}"`).join(', ')}, got "${String(issue.received)}"`;
    default:
      return `${where}: ${issue.message}`;
  }
}

/**
 * A spec's `kafka` section on its own (`pgferry registry --kafka-config FILE`), validated and
 * defaulted as in a task spec; errors name `file` and the field.
 */
export function parseKafkaSection(input: unknown, file: string): TaskSpec['kafka'] {
  const result = taskSpecSchema.innerType().shape.kafka.safeParse(input ?? {});
  if (!result.success)
    throw new SpecError(
      result.error.issues.map((i) => `${file}: ${formatIssue({ ...i, path: ['kafka', ...i.path] })}`),
    );
  return result.data;
}

/** Validates and defaults a spec object. Throws SpecError naming every problem. */
export function parseTaskSpec(input: unknown): TaskSpec {
  const result = taskSpecSchema.safeParse(input);
  if (!result.success) throw new SpecError(result.error.issues.map(formatIssue));
  return result.data;
}

/** Reads a YAML or JSON spec file (JSON is YAML). Errors name the file. */
export function loadTaskSpec(file: string, env: Record<string, string | undefined> = {}): TaskSpec {
  return parseTaskSpec(readTaskSpecFile(file, env));
}

/**
 * A spec file's content, not validated yet: for a caller that completes it first (the CLI's
 * --kafka and KAFKA_BROKERS) and then validates it with parseTaskSpec. `${NAME}` in string
 * values is replaced by `env`'s NAME (expandEnvReferences; the CLI passes its environment).
 * Errors name the file, and a syntax error its line and column, never the line's text: it
 * may hold a password.
 */
export function readTaskSpecFile(file: string, env: Record<string, string | undefined> = {}): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError([`cannot read ${file}: ${(err as Error).message}`], { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // The parser's message quotes the offending line after its first line: keep only that.
    const first = (err as Error).message.split('\n')[0].replace(/:$/, '');
    throw new SpecError([`${file} is not valid YAML or JSON: ${first}`]);
  }
  return expandEnvReferences(doc, env);
}
