import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  addKnownSecret,
  ObjectError,
  parseKafkaSection,
  PgferryError,
  readTaskSpecFile,
  SpecError,
} from '@pgferry/core';
import { describeEndpoint, resolveEndpoint, resolveEndpointPassword, type Endpoint } from '@pgferry/pg';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import { checkKafkaConfig, withKafkaAdmin } from '@pgferry/kafka';
import {
  kafkaClient,
  readReplayManifest,
  registryTls,
  specKafkaConnection,
  specRegistryUrl,
  runReplay,
  verifyAgainstReplay,
  type KafkaClient,
  type ReplayManifest,
} from '@pgferry/task';
import { passwordWarning } from './migrate-command';

export interface ReplayCommandOptions {
  /** The task's topic prefix, or its name (prefix pgferry.<name>). */
  from: string;
  /** The database to rebuild (empty, or an interrupted replay's). */
  target?: string;
  /** The database to compare with what the topics say (instead of --target). */
  verify?: string;
  /** A file whose first line is the --target or --verify database's password. */
  targetPasswordFile?: string;
  untilLsn?: string;
  untilTime?: string;
  /** The task's work dir (the embedded broker's data; replay's schema files). Default .pgferry/<from>. */
  workDir?: string;
  kafka?: string;
  schemaRegistry?: string;
  /** A file like a spec's kafka section: tls, sasl, schemaRegistry credentials and CA (with --kafka). */
  kafkaConfig?: string;
  /** Rows applied per second at most. */
  maxRowsPerSecond?: number;
  /** Rows per compared key range with --verify. */
  chunkRows?: number;
  out: Writable;
}

/**
 * `pgferry replay`: rebuilds a database from a task's topics (--target), or compares one with
 * them (--verify), up to the end of the topics or a point (--until-lsn, --until-time), on the
 * task's embedded broker data (its work dir) or on real Kafka (--kafka, --schema-registry).
 * Returns the exit code: 0 done (or equal), 1 differences found.
 */
export async function runReplayCommand(opts: ReplayCommandOptions): Promise<number> {
  const say = (s: string) => opts.out.write(`${s}\n`);
  if (Boolean(opts.target) === Boolean(opts.verify))
    throw new SpecError([
      'give --target URL (the database to rebuild) or --verify URL (the one to compare), one of them',
    ]);
  if (opts.untilLsn && opts.untilTime) throw new SpecError(['give --until-lsn or --until-time, not both']);
  const { endpoint } = await resolveEndpointPassword(
    { url: (opts.target ?? opts.verify)!, passwordFile: opts.targetPasswordFile },
    'destination',
    process.env,
    passwordWarning,
  );
  const database: Endpoint = resolveEndpoint(endpoint, 'destination');
  const workDir = opts.workDir ?? join('.pgferry', opts.from);
  let embedded: EmbeddedKafka | undefined;
  let brokers = opts.kafka
    ?.split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  let registryUrl = opts.schemaRegistry;
  if (!brokers?.length) {
    const dataDir = embeddedRunDir(workDir);
    // Read-side: nothing is produced; the task's migrate must not run on this data at the same time.
    embedded = await startEmbeddedKafka({ dataDir, port: 0, registryPort: 0 });
    brokers = embedded.brokers;
    registryUrl = embedded.registryUrl;
    say(`kafka        embedded broker over ${dataDir}`);
  } else if (!registryUrl) {
    throw new SpecError(['--kafka needs --schema-registry (or SCHEMA_REGISTRY_URL): the records are Avro']);
  }
  if (opts.kafkaConfig && embedded) {
    await embedded.close();
    throw new SpecError([
      '--kafka-config is for a Kafka of your own (--kafka); the embedded broker needs none',
    ]);
  }
  // TLS, SASL and the registry's credentials and CA of a Kafka of one's own, as a spec gives them.
  const section = opts.kafkaConfig
    ? { kafka: parseKafkaSection(readTaskSpecFile(opts.kafkaConfig, process.env), opts.kafkaConfig) }
    : null;
  addKnownSecret(section?.kafka.sasl?.password);
  addKnownSecret(section?.kafka.schemaRegistry?.password);
  if (section) registryUrl = specRegistryUrl(section, registryUrl!);
  try {
    const kafka = kafkaClient(
      section ? specKafkaConnection(section, brokers) : { brokers },
      'pgferry-replay',
    );
    checkKafkaConfig(kafka);
    const manifest = await findTask(kafka, opts.from);
    const point = { lsn: opts.untilLsn, time: opts.untilTime };
    const upTo = opts.untilLsn
      ? `LSN ${opts.untilLsn}`
      : opts.untilTime
        ? `time ${opts.untilTime}`
        : 'the end of the topics';
    say(
      `replay       task ${manifest.task} (run ${manifest.runId}, ${manifest.targets.length} tables, topics ${manifest.prefix}.*) up to ${upTo}`,
    );
    const common = {
      kafka,
      registryUrl: registryUrl!,
      registryTls: section ? registryTls(section) : undefined,
      manifest,
      point,
      workDir,
      rowsPerSecond: opts.maxRowsPerSecond,
      onEvent: (e: { kind: string; phase?: string; status?: string; detail?: string }) => {
        if (e.kind === 'phase')
          say(`${(e.phase ?? '').padEnd(12)} ${e.status}${e.detail ? ` ${e.detail}` : ''}`);
      },
    };
    if (opts.verify) {
      const result = await verifyAgainstReplay({ ...common, database, chunkRows: opts.chunkRows });
      say(
        `verify       ${describeEndpoint(database)} against the topics${result.untilLsn ? ` at LSN ${result.untilLsn}` : ''}`,
      );
      say(result.text);
      say(result.ok ? 'equal' : 'DIFFERENT: the database does not hold what the topics say');
      return result.ok ? 0 : 1;
    }
    const result = await runReplay({ ...common, target: database });
    say(
      `done         ${result.tables} tables, ${result.records} records replayed${result.untilLsn ? ` up to LSN ${result.untilLsn}` : ''}${result.resumed ? ' (resumed)' : ''}, sequences set past their columns' largest values: ${result.sequences}`,
    );
    return 0;
  } finally {
    await embedded?.close();
  }
}

/**
 * The embedded broker data of the task's newest run under `<workDir>/kafka` (migrate keeps one
 * directory per run, run-<id>).
 */
function embeddedRunDir(workDir: string): string {
  const kafkaDir = join(workDir, 'kafka');
  const runs = existsSync(kafkaDir) ? readdirSync(kafkaDir).filter((d) => d.startsWith('run-')) : [];
  if (!runs.length)
    throw new ObjectError(
      `no embedded broker data under ${kafkaDir}: give the work dir of the task's migrate (--work-dir, default .pgferry/<name>), or its Kafka with --kafka and --schema-registry`,
      { code: 'REPLAY_NO_BROKER_DATA' },
    );
  const newest = runs
    .map((d) => ({ dir: join(kafkaDir, d), at: statSync(join(kafkaDir, d)).mtimeMs }))
    .sort((a, b) => b.at - a.at)[0];
  return newest.dir;
}

/** The task record of `from` taken as a topic prefix, else as a task name (prefix pgferry.<name>). */
async function findTask(kafka: KafkaClient, from: string): Promise<ReplayManifest> {
  for (const prefix of [from, `pgferry.${from}`]) {
    const manifest = await readReplayManifest(kafka, prefix);
    if (manifest) return manifest;
  }
  const known = (await withKafkaAdmin(kafka, (admin) => admin.listTopics()))
    .filter((t) => t.endsWith('.schema'))
    .map((t) => t.slice(0, -'.schema'.length))
    .sort();
  throw new PgferryError(
    `unknown topic prefix or task ${from}: Kafka has neither ${from}.schema nor pgferry.${from}.schema (a task's record, published by pgferry migrate's full-data phase); ${known.length ? `the tasks on this Kafka have prefixes ${known.join(', ')}` : 'this Kafka holds no pgferry task'}`,
    { code: 'REPLAY_UNKNOWN_PREFIX' },
  );
}
