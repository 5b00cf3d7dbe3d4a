#!/usr/bin/env node
// npm run kafka -- [--port N] [--controller-port N] [--data-dir DIR] [--heap-mb N] [--config key=value]...
// Runs one Apache Kafka broker (single-node KRaft, the test fixture's settings) in the foreground
// for hand tests and benchmarks. DIR keeps the data across runs (formatted only when empty);
// without it the data lives in a temp dir removed on exit. Ctrl-C or SIGTERM stops it cleanly.
const { join } = require('node:path');
const { setInterval, clearInterval } = require('node:timers');

const USAGE =
  'usage: npm run kafka -- [--port N] [--controller-port N] [--data-dir DIR] [--heap-mb N] [--config key=value]...';

function parseArgs(argv) {
  const options = { config: {} };
  const int = (flag, v, max) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0 || n > max)
      throw new Error(`${flag} needs an integer from 1 to ${max}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag === '--port') options.port = int(flag, value(), 65535);
    else if (flag === '--controller-port') options.controllerPort = int(flag, value(), 65535);
    else if (flag === '--data-dir') options.dataDir = value();
    else if (flag === '--heap-mb') options.heapMb = int(flag, value(), 1 << 20);
    else if (flag === '--config') {
      const kv = value();
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--config needs key=value, got ${kv}`);
      options.config[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

async function main() {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    process.exit(2);
  }
  let testing;
  try {
    testing = require(join(__dirname, '..', 'libs', 'testing', 'dist'));
  } catch (err) {
    console.error(
      `libs/testing is not built (${err.code || err.message}): run npm ci && npm run build first`,
    );
    process.exit(1);
  }
  const version = /kafka_2\.13-([^/]+)\.jar/.exec(testing.kafkaRuntime().classpath)?.[1] ?? '?';
  console.log(`starting Apache Kafka ${version}...`);
  const kafka = await testing.startKafka(options);
  console.log(`ready in ${(kafka.startupMs / 1000).toFixed(1)} s`);
  console.log(`bootstrap   ${kafka.bootstrap}`);
  console.log(`cluster id  ${kafka.clusterId}`);
  console.log(`data dir    ${kafka.dataDir}${options.dataDir ? '' : ' (temporary, removed on exit)'}`);
  console.log(`log         ${kafka.logFile}`);
  console.log(`pid         ${kafka.pid}; Ctrl-C stops it`);

  // The broker's child process does not keep Node alive by design; this does, until a signal.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const shutdown = async (signal) => {
    if (stopping) {
      console.log(`${signal} again: killing the broker`);
      await kafka.kill('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: stopping the broker...`);
    if (options.dataDir) await kafka.stop();
    else await kafka.remove();
    console.log('stopped');
    clearInterval(keepAlive);
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  const exit = await kafka.exited();
  if (!stopping) {
    console.error(`Kafka exited by itself (${exit.code ?? exit.signal}); last lines of ${kafka.logFile}:`);
    console.error(kafka.logTail(40));
    if (!options.dataDir) await kafka.remove();
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
