#!/usr/bin/env node
import { Command, Option } from 'commander';
import { createLogger, describeError, makePrivateDir, PgferryError, redactString } from '@pgferry/core';
import { commandLinePasswordWarning, hideCommandLinePasswords, redactProcessOutput } from './cli-secrets';
import { precheckGate } from './check';
import { runRelease } from './release-command';
import { runCutover } from './cutover-command';
import { runThrottle } from './throttle-command';
import { runDemo } from './demo';
import { runBrokerCommand } from './broker-command';
import { passwordWarning, runMigrate, specFromOptions } from './migrate-command';
import { runRegistryCommand } from './registry-command';
import { runReplayCommand } from './replay-command';
import { runStreamCommand } from './stream-command';
import { resolveEndpoint, resolveEndpointPassword } from '@pgferry/pg';

const log = createLogger({ name: 'pgferry' });

async function main(argv: string[]): Promise<number> {
  const program = new Command('pgferry')
    .description('Move a live PostgreSQL database to another PostgreSQL server through Kafka')
    .showHelpAfterError();
  const sourcePasswordFile = () =>
    new Option('--source-password-file <file>', "a file whose first line is the source's password");
  const targetPasswordFile = () =>
    new Option('--target-password-file <file>', "a file whose first line is the destination's password");

  let exitCode = 0;
  const collect = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command('check')
    .description(
      'precheck a task without starting it: credentials, versions, privileges, logical decoding, keys, conflicts, names (read-only)',
    )
    .option('--spec <file>', 'task spec (YAML or JSON)')
    .option('--source <url>', 'source postgres://user:password@host:port/database')
    .option('--target <url>', 'destination postgres://user:password@host:port/database')
    .addOption(sourcePasswordFile())
    .addOption(targetPasswordFile())
    .option('--tables <list>', 'schema.table[,schema.table|schema.*] to check (default: every table)')
    .option('--name <name>', 'task name (names the slot pgferry_<name>)', 'migrate')
    .option('--ack <id>', 'acknowledge a precheck alert by its id (repeatable)', collect)
    .addOption(new Option('--incremental', 'also check what incremental migration needs'))
    .option(
      '--reset-topics',
      'check as migrate --reset-topics would run: topics of another run are to be reset',
    )
    .option(
      '--work-dir <dir>',
      'the task work dir, where the embedded broker data goes (default .pgferry/<name>)',
    )
    .action(async (opts) => {
      const gate = await precheckGate(await specFromOptions(opts), process.stdout, opts.ack, opts.workDir);
      exitCode = gate.mayStart ? 0 : 1;
    });

  program
    .command('demo')
    .description(
      'start two local PostgreSQL clusters with sample data and migrate one to the other while writers keep changing it: stream, cut over, compare every table',
    )
    .option('--scale <n>', 'pgbench scale of the sample data', '1')
    .option('--writers <n>', 'client connections writing to the source during the migration', '4')
    .option('--rate <n>', 'transactions per second over all writers', '200')
    .option('--stream-seconds <n>', 'how long to stream under the writes before the cutover', '15')
    .action(async (opts) => {
      exitCode = (
        await runDemo({
          scale: Number(opts.scale),
          writers: Number(opts.writers),
          rate: Number(opts.rate),
          streamSeconds: Number(opts.streamSeconds),
          out: process.stdout,
        })
      ).code;
    });

  program
    .command('migrate')
    .description(
      'migrate schema and data (precheck, schema, full data through Kafka, post-data, verify; with --incremental then changes until cutover); resumable',
    )
    .option('--spec <file>', 'task spec (YAML or JSON)')
    .option('--source <url>', 'source postgres://user:password@host:port/database')
    .option('--target <url>', 'destination postgres://user:password@host:port/database')
    .addOption(sourcePasswordFile())
    .addOption(targetPasswordFile())
    .option('--tables <list>', 'schema.table[,schema.table|schema.*] to migrate (default: every table)')
    .option('--name <name>', 'task name (names the slot pgferry_<name>)', 'migrate')
    .option('--work-dir <dir>', 'where the embedded broker and schema dumps live (default .pgferry/<name>)')
    .addOption(
      new Option(
        '--kafka <brokers>',
        'Kafka bootstrap servers host:port[,...]: real Kafka instead of the embedded broker',
      ).env('KAFKA_BROKERS'),
    )
    .addOption(
      new Option(
        '--schema-registry <url>',
        'schema registry of that Kafka (pgferry registry serves one)',
      ).env('SCHEMA_REGISTRY_URL'),
    )
    .option('--api-port <n>', 'also serve GET /tasks/:id (JSON progress) on this port while migrating')
    .option('--ack <id>', 'acknowledge a precheck alert by its id (repeatable)', collect)
    .option('--no-verify', 'skip comparing every table on both servers after the load')
    .option('--in-process', 'run capture and applier inside this process instead of as child processes')
    .option(
      '--reset-topics',
      "delete and recreate Kafka topics that hold another run's records (never done otherwise)",
    )
    .addOption(
      new Option(
        '--incremental',
        'stream changes after the full load until pgferry cutover (without --spec)',
      ),
    )
    .action(async (opts) => {
      exitCode = (
        await runMigrate({
          ...opts,
          apiPort: opts.apiPort === undefined ? undefined : Number(opts.apiPort),
          out: process.stdout,
        })
      ).code;
    });

  program
    .command('cutover')
    .description(
      'finish an incremental task: the running migrate catches up with the source, stops streaming, sets sequences and verifies; stop writes on the source first',
    )
    .option('--spec <file>', 'task spec (YAML or JSON)')
    .option(
      '--target <url>',
      'destination postgres://user:password@host:port/database (holds the task state)',
    )
    .addOption(targetPasswordFile())
    .option('--name <name>', 'task name', 'migrate')
    .option('--timeout <seconds>', 'stop waiting after this long (the request stays)')
    .action(async (opts) => {
      exitCode = await runCutover(
        { ...opts, timeout: opts.timeout === undefined ? undefined : Number(opts.timeout) },
        process.stdout,
      );
    });

  program
    .command('throttle')
    .description(
      "change a task's rate limits while it runs (docs/throttling.md); each value per second, or off to clear it; without a limit flag, show the limits and the rates now",
    )
    .option('--spec <file>', 'task spec (YAML or JSON)')
    .option(
      '--target <url>',
      'destination postgres://user:password@host:port/database (holds the task state)',
    )
    .addOption(targetPasswordFile())
    .option('--name <name>', 'task name', 'migrate')
    .option('--full-queries <n>', 'full load: statements to the source per second')
    .option('--full-rows <n>', 'full load: rows read from the source per second')
    .option('--full-bytes <n>', 'full load: bytes read from the source per second')
    .option('--incremental-rows <n>', 'incremental: changes applied per second')
    .option('--incremental-bytes <n>', 'incremental: record bytes applied per second')
    .option('--clear', 'clear every limit')
    .action(async (opts) => {
      exitCode = await runThrottle(opts, process.stdout);
    });

  program
    .command('release')
    .description(
      'drop what a task left on the source (its replication slot, publication, heartbeat table and DDL capture) and its embedded broker data; reports anything it could not drop',
    )
    .option('--spec <file>', 'task spec (YAML or JSON)')
    .option('--source <url>', 'source postgres://user:password@host:port/database')
    .addOption(sourcePasswordFile())
    .option('--name <name>', 'task name (the slot is pgferry_<name>)', 'migrate')
    .option('--work-dir <dir>', 'the task work dir whose embedded broker data goes (default .pgferry/<name>)')
    .action(async (opts) => {
      exitCode = await runRelease(opts, process.stdout);
    });

  program
    .command('replay')
    .description(
      "rebuild a database from a task's topics alone (schema, snapshot, changes in order up to a point; exactly once, resumable), or compare one with them (--verify); never reaches the source",
    )
    .requiredOption('--from <prefix>', "the task's topic prefix, or its name (prefix pgferry.<name>)")
    .option('--target <url>', 'the empty database to rebuild (or the one an interrupted replay left)')
    .option(
      '--verify <url>',
      'compare this database with what the topics say, naming the first rows that differ',
    )
    .addOption(targetPasswordFile())
    .option('--until-lsn <lsn>', 'replay the changes committed up to this LSN (e.g. 0/16B3748)')
    .option('--until-time <time>', 'replay the changes committed up to this time (ISO 8601)')
    .option(
      '--work-dir <dir>',
      "the task's work dir: its embedded broker data and replay's files (default .pgferry/<from>)",
    )
    .addOption(
      new Option('--kafka <brokers>', "the task's Kafka (else its embedded broker data)").env(
        'KAFKA_BROKERS',
      ),
    )
    .addOption(
      new Option('--schema-registry <url>', 'schema registry of that Kafka').env('SCHEMA_REGISTRY_URL'),
    )
    .option(
      '--kafka-config <file>',
      "YAML/JSON like a spec's kafka section for that Kafka: tls, sasl, allowPlaintextSasl, schemaRegistry (credentials, CA)",
    )
    .option('--max-rows-per-second <n>', 'apply at most this many rows per second')
    .option('--chunk-rows <n>', 'rows per compared key range with --verify', '100000')
    .action(async (opts) => {
      exitCode = await runReplayCommand({
        ...opts,
        maxRowsPerSecond: opts.maxRowsPerSecond === undefined ? undefined : Number(opts.maxRowsPerSecond),
        chunkRows: Number(opts.chunkRows),
        out: process.stdout,
      });
    });

  program
    .command('serve')
    .description('serve the task API (GET /tasks, GET /tasks/:id) from the control schema of a destination')
    .requiredOption('--target <url>', 'destination postgres://user:password@host:port/database')
    .addOption(targetPasswordFile())
    .option('--port <n>', 'HTTP port', '8088')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--token-dir <dir>', 'where the bearer token is written (api-token, 0600)', '.pgferry')
    .action(async (opts) => {
      const { startTaskApi } = await import('./api/tasks.module');
      const { newApiToken } = await import('./api/api-guard');
      const target = {
        url: opts.target as string,
        passwordFile: opts.targetPasswordFile as string | undefined,
      };
      const { endpoint } = await resolveEndpointPassword(target, 'destination', process.env, passwordWarning);
      const dir = opts.tokenDir as string;
      makePrivateDir(dir);
      const { token, file } = newApiToken(dir);
      const api = await startTaskApi(resolveEndpoint(endpoint, 'destination'), Number(opts.port), opts.host, {
        token,
        tokenHint: `in ${file}`,
      });
      process.stdout.write(`pgferry api: ${api.url}/tasks\n`);
      process.stdout.write(`api token: ${token} (Authorization: Bearer; also in ${file})\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await api.app.close();
    });

  program
    .command('broker')
    .description('run the embedded Kafka-protocol broker and schema registry (single node, durable on disk)')
    .requiredOption('--data-dir <dir>', 'where topics, offsets and schemas are stored')
    .option('--port <n>', 'Kafka port (0 picks a free one)', '9092')
    .option('--registry-port <n>', 'schema registry HTTP port (0 picks a free one; none to disable)', '8081')
    .option('--host <host>', 'address to listen on and advertise', '127.0.0.1')
    .option('--flush <policy>', 'batch: fsync before every acknowledgement; N: fsync every N ms', 'batch')
    .option('--partitions <n>', 'partitions of auto-created topics', '1')
    .option(
      '--credentials-file <file>',
      'require SASL (and registry basic auth) with a new secret, written to this file (0600, kcat -F)',
    )
    .action(async (opts) => {
      exitCode = await runBrokerCommand(opts);
    });

  for (const role of ['capture', 'applier'] as const)
    program
      .command(role)
      .description(
        role === 'capture'
          ? "stream a task's slot into Kafka on this machine (options.stream.capture: external); one streams at a time, others stand by"
          : "apply a task's changes from Kafka on this machine (options.stream.appliers: 0); several share the partitions as one consumer group",
      )
      .requiredOption('--spec <file>', 'task spec (YAML or JSON)')
      .addOption(
        new Option('--kafka <brokers>', 'Kafka bootstrap servers host:port[,...]').env('KAFKA_BROKERS'),
      )
      .addOption(
        new Option('--schema-registry <url>', 'schema registry of that Kafka').env('SCHEMA_REGISTRY_URL'),
      )
      .action(async (opts) => {
        exitCode = await runStreamCommand(role, { ...opts, out: process.stdout });
      });

  program
    .command('registry')
    .description(
      "run pgferry's Confluent-compatible schema registry over a real Kafka (schemas in its _schemas topic)",
    )
    .requiredOption('--kafka <brokers>', 'Kafka bootstrap servers host:port[,...]')
    .option('--port <n>', 'HTTP port (0 picks a free one)', '8081')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--topic <name>', 'the topic the schemas are kept in', '_schemas')
    .option(
      '--kafka-config <file>',
      "YAML/JSON like a spec's kafka section: tls, sasl, allowPlaintextSasl; schemaRegistry credentials its clients must give",
    )
    .action(async (opts) => {
      exitCode = await runRegistryCommand(opts);
    });

  await program.parseAsync(argv);
  return exitCode;
}

// Everything printed is redacted; a password on the command line is warned about and hidden from ps.
redactProcessOutput();
const warning = commandLinePasswordWarning(process.argv.slice(2));
if (warning) process.stderr.write(warning);
hideCommandLinePasswords(process.argv.slice(2));

main(process.argv).then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof PgferryError) process.stderr.write(`pgferry: ${redactString(describeError(err))}\n`);
    else log.error({ err }, 'pgferry failed');
    process.exit(2);
  },
);
