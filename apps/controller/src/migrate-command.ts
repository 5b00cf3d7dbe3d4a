import { join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  createLogger,
  makePrivateDir,
  parseTaskSpec,
  readTaskSpecFile,
  PgferryError,
  type TaskSpec,
} from '@pgferry/core';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import { assertVerified, formatVerifyReport, verifyTables } from '@pgferry/verify';
import {
  kafkaClient,
  prestartFullDataChildren,
  specKafkaConnection,
  specRegistryUrl,
  registryUrlWithCredentials,
  runFullMigration,
  TaskStoppedError,
  type FullMigrationResult,
} from '@pgferry/task';
import { precheckGate } from './check';
import { ProgressReporter } from './progress';
import { connect, resolveEndpoint, resolveSpecPasswords } from '@pgferry/pg';
import { newRunId, readRun } from '@pgferry/control';
import { newEmbeddedCredentials, removeCredentialsFile, writeCredentialsFile } from './embedded-credentials';

export interface MigrateOptions {
  spec?: string;
  /** Kafka bootstrap servers (host:port, comma-separated): real Kafka instead of the embedded broker. */
  kafka?: string;
  /** The schema registry of that Kafka (with `kafka`). */
  schemaRegistry?: string;
  source?: string;
  target?: string;
  /** A file whose first line is the source's (destination's) password: the endpoint's passwordFile. */
  sourcePasswordFile?: string;
  targetPasswordFile?: string;
  tables?: string;
  name?: string;
  workDir?: string;
  /** Serve GET /tasks/:id on this port while the migration runs. */
  apiPort?: number;
  /** Precheck alert ids the user accepts (added to the spec's precheck.acknowledge). */
  ack?: string[];
  /** Incremental migration follows the full load (only without --spec; the spec says it otherwise). */
  incremental?: boolean;
  /** Delete and recreate topics that hold another run's records (kafka.resetTopics). */
  resetTopics?: boolean;
  /** Run capture and applier inside this process instead of as supervised child processes. */
  inProcess?: boolean;
  /** false: skip the verify phase (comparing every table on both servers after the load). */
  verify?: boolean;
  /** Stops an incremental task's streaming (tests; the CLI uses SIGINT/SIGTERM). */
  signal?: AbortSignal;
  out: Writable & { isTTY?: boolean };
}

/** schema.table[,schema.table...] -> objects.include, grouped by schema. "schema.*" takes a whole schema. */
export function tablesOption(list: string): TaskSpec['objects'] {
  const bySchema = new Map<string, string[] | undefined>();
  for (const item of list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const dot = item.indexOf('.');
    if (dot <= 0) throw new PgferryError(`--tables: "${item}" must be schema.table (or schema.*)`);
    const schema = item.slice(0, dot);
    const table = item.slice(dot + 1);
    if (table === '*') bySchema.set(schema, undefined);
    else if (!bySchema.has(schema) || bySchema.get(schema))
      bySchema.set(schema, [...(bySchema.get(schema) ?? []), table]);
  }
  return {
    include: [...bySchema].map(([schema, tables]) => ({ schema, ...(tables ? { tables } : {}) })),
  } as TaskSpec['objects'];
}

/**
 * The task spec from --spec (its `${NAME}` references expanded from the environment) or the
 * command line, with both endpoints' passwords resolved (resolveSpecPasswords: the spec,
 * --source-password-file / --target-password-file, PGPASSWORD, PGPASSFILE or ~/.pgpass).
 */
export async function specFromOptions(opts: MigrateOptions): Promise<TaskSpec> {
  return resolveSpecPasswords(specInput(opts), process.env, passwordWarning);
}

/** A password file pgferry did not use, like libpq's warning, on stderr. */
export function passwordWarning(line: string): void {
  process.stderr.write(`pgferry: warning: ${line}\n`);
}

function specInput(opts: MigrateOptions): TaskSpec {
  const spec = opts.spec
    ? (readTaskSpecFile(opts.spec, process.env) as Record<string, unknown> | null)
    : null;
  if (!spec && (!opts.source || !opts.target))
    throw new PgferryError('give --spec FILE, or both --source URL and --target URL');
  const input: Record<string, unknown> = spec ?? {
    name: opts.name ?? 'migrate',
    source: { url: opts.source },
    destination: { url: opts.target },
    ...(opts.incremental ? { migrationTypes: { incremental: true } } : {}),
    ...(opts.tables ? { objects: tablesOption(opts.tables) } : {}),
  };
  const withFile = (side: 'source' | 'destination', file: string | undefined) => {
    if (file) input[side] = { ...((input[side] as object | undefined) ?? {}), passwordFile: file };
  };
  withFile('source', opts.sourcePasswordFile);
  withFile('destination', opts.targetPasswordFile);
  if (opts.resetTopics) input.kafka = { ...((input.kafka as object | undefined) ?? {}), resetTopics: true };
  // --kafka and --schema-registry, else KAFKA_BROKERS and SCHEMA_REGISTRY_URL, win over the spec's.
  const brokers = opts.kafka ?? process.env.KAFKA_BROKERS;
  const registry = opts.schemaRegistry ?? process.env.SCHEMA_REGISTRY_URL;
  if (!brokers && !registry) return parseTaskSpec(input);
  const kafka = { ...((input.kafka as object | undefined) ?? {}) } as Record<string, unknown>;
  if (brokers)
    kafka.brokers = brokers
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean);
  if (registry) kafka.schemaRegistryUrl = registry;
  return parseTaskSpec({ ...input, kafka });
}

/**
 * `pgferry migrate`: precheck, then schema, full data through Kafka, post-data; on the embedded
 * broker unless the spec names Kafka brokers. Resumable: run it again after a crash and it
 * continues from the phases and chunks recorded in the destination.
 */
export async function runMigrate(
  opts: MigrateOptions,
): Promise<{ code: number; result?: FullMigrationResult }> {
  const spec = await specFromOptions(opts);
  const say = (s: string) => opts.out.write(`${s}\n`);
  // The verify phase: every table compared on both servers by count and checksum per key range,
  // on as many connections per server as the snapshot reads use.
  const verify: Parameters<typeof runFullMigration>[0]['verify'] =
    opts.verify === false
      ? undefined
      : async (source, destination, tables, snapshot) => {
          const open = (side: 'source' | 'destination') => () =>
            connect(resolveEndpoint(spec[side], side), side, { applicationName: 'pgferry verify' });
          const report = await verifyTables(source, destination, tables, {
            sourceSnapshot: snapshot,
            jobs: spec.options.snapshotWorkers,
            connect: { source: open('source'), destination: open('destination') },
            nameCase: spec.objects.nameCase,
          });
          say('verify');
          say(formatVerifyReport(report));
          return assertVerified(report);
        };
  const workDir = opts.workDir ?? join('.pgferry', spec.name);
  const gate = await precheckGate(spec, opts.out, opts.ack, workDir);
  if (!gate.mayStart) {
    say('nothing was written');
    return { code: 1 };
  }
  // Child configurations (with passwords), logs, schema dumps and the embedded broker's copy
  // of the data live here: only this user may read them.
  makePrivateDir(workDir);
  const children = opts.inProcess
    ? undefined
    : {
        captureEntry: require.resolve('@pgferry/capture-app'),
        applierEntry: require.resolve('@pgferry/applier-app'),
        dir: workDir,
      };
  let embedded: EmbeddedKafka | undefined;
  let brokers = spec.kafka.brokers;
  if (!brokers && (spec.options.stream.capture === 'external' || spec.options.stream.appliers === 0))
    throw new PgferryError(
      'options.stream runs the capture or the appliers outside pgferry migrate: they need a Kafka they all reach; give --kafka and --schema-registry (or KAFKA_BROKERS and SCHEMA_REGISTRY_URL, or kafka.brokers in the spec), or keep options.stream at its default',
    );
  let registryUrl = spec.kafka.schemaRegistryUrl;
  let embeddedSasl: TaskSpec['kafka']['sasl'] | undefined;
  // A task the destination knows keeps its run; one it does not know (a fresh or recreated
  // destination) starts a new run, whose embedded broker data is its own (below).
  const runId = (await recordedRunId(spec)) ?? newRunId();
  if (!brokers) {
    // Private to the task and the run: a new run never reads an older run's topics, and a
    // resumed run finds its own (from another directory it finds none: the run check says so).
    // Anyone else on the machine could reach its ports: it and the registry require the run's secret.
    const credentials = newEmbeddedCredentials();
    embedded = await startEmbeddedKafka({
      dataDir: embeddedDataDir(workDir, runId),
      port: 0,
      registryPort: 0,
      sasl: credentials,
      logger: brokerWarnings(say),
    });
    brokers = embedded.brokers;
    registryUrl = registryUrlWithCredentials(
      embedded.registryUrl!,
      credentials.username,
      credentials.password,
    );
    embeddedSasl = { mechanism: 'scram-sha-256', ...credentials };
    const file = writeCredentialsFile(workDir, embedded, credentials);
    say(
      `kafka        embedded broker ${brokers.join(',')}, schema registry ${embedded.registryUrl} (credentials in ${file})`,
    );
  } else if (!registryUrl) {
    throw new PgferryError(
      'kafka.brokers is set but kafka.schemaRegistryUrl is not: the Avro records need a schema registry',
    );
  } else registryUrl = specRegistryUrl(spec, registryUrl);
  const started = Date.now();
  const api = opts.apiPort === undefined ? undefined : await startApi(spec, opts.apiPort, workDir);
  if (api) {
    say(`api          ${api.url}/tasks/${spec.name}`);
    say(`api token    ${api.token} (Authorization: Bearer; also in ${api.tokenFile})`);
  }
  // The capture and the applier load their modules while the schema phase runs.
  const prestarted = children && spec.migrationTypes.full ? prestartFullDataChildren(children) : undefined;
  try {
    const connection = embeddedSasl ? { brokers, sasl: embeddedSasl } : specKafkaConnection(spec, brokers);
    const kafka = kafkaClient(connection, `pgferry-${spec.name}`);
    const progress = new ProgressReporter(opts.out);
    // Ctrl-C or SIGTERM while streaming: stop the stream and the applier cleanly; run again to resume.
    const stop = new AbortController();
    const onSignal = () => {
      if (!stop.signal.aborted) say('stopping: the stream and the applier finish what they hold');
      stop.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const result = await runFullMigration({
      signal: opts.signal ?? stop.signal,
      spec,
      kafka,
      registryUrl: registryUrl!,
      runId,
      workDir: join(workDir, 'schema'),
      onEvent: (e) => {
        // A child's crash and restart is news; its routine start and stop are in its log file.
        if (e.kind !== 'process') progress.handle(e);
        else if (e.status === 'restarting') say(`${e.process.padEnd(12)} ${e.detail}`);
      },
      verify,
      processes: children && { ...children, kafka: connection, prestarted },
    })
      .catch((err) => {
        // A requested stop is not a failure: say how to go on, exit 130 like an interrupted command.
        if (err instanceof TaskStoppedError) return err;
        throw err;
      })
      .finally(() => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      });
    if (result instanceof TaskStoppedError) {
      say(`stopped      ${result.message}`);
      return { code: 130 };
    }
    const secs = (Date.now() - started) / 1000;
    say(
      `done         ${result.tables.length} tables, ${result.rowsCaptured} rows copied in ${secs.toFixed(1)}s`,
    );
    if (spec.migrationTypes.incremental)
      say(
        `cut over     the destination holds every source change; run pgferry release --name ${spec.name} to drop the slot, publication and heartbeat table from the source`,
      );
    return { code: 0, result };
  } finally {
    prestarted?.dispose();
    await api?.app.close();
    await embedded?.close();
    if (embedded) removeCredentialsFile(workDir);
  }
}

/** The embedded broker's data of one run of a task (`pgferry release` removes the task's). */
export function embeddedDataDir(workDir: string, runId: string): string {
  return join(workDir, 'kafka', `run-${runId}`);
}

/**
 * The embedded broker's and registry's warnings (a partition that cannot write, a client's bad
 * frame) as lines of migrate's output, where the user watching the task sees them.
 */
function brokerWarnings(say: (line: string) => void) {
  return createLogger({
    name: 'embedded-kafka',
    level: 'warn',
    destination: {
      write(line: string) {
        let msg = line.trim();
        try {
          msg = (JSON.parse(line) as { msg?: string }).msg ?? msg;
        } catch {
          // not JSON: printed as it is
        }
        say(`kafka        warning: ${msg}`);
      },
    },
  });
}

/** The run the destination records for the task, if it knows the task. */
async function recordedRunId(spec: TaskSpec): Promise<string | null> {
  const client = await connect(resolveEndpoint(spec.destination, 'destination'), 'destination', {
    applicationName: 'pgferry controller',
  });
  try {
    return (await readRun(client, spec.name))?.runId ?? null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The task API; NestJS and its HTTP platform are loaded only for it (0.2 s of every start otherwise). */
async function startApi(spec: TaskSpec, port: number, workDir: string) {
  const [{ startTaskApi }, { newApiToken }] = await Promise.all([
    import('./api/tasks.module'),
    import('./api/api-guard'),
  ]);
  const { token, file } = newApiToken(workDir);
  const api = await startTaskApi(resolveEndpoint(spec.destination, 'destination'), port, '127.0.0.1', {
    token,
    tokenHint: `in ${file}`,
  });
  return { ...api, token, tokenFile: file };
}
