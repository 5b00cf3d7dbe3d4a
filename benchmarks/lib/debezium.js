// Debezium as users run it: Kafka Connect standalone (one JVM) with Debezium's PostgreSQL source
// connector and its JDBC sink connector, jars from Maven Central through java/debezium/pom.xml.
const { spawn, spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const { existsSync, mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { setTimeout, clearTimeout } = require('node:timers');
const http = require('node:http');
const { freePort } = require('@pgferry/testing');

const POM = join(__dirname, '..', '..', 'java', 'debezium', 'pom.xml');

/**
 * The classpath of java/debezium/pom.xml, cached by the pom's hash under the temp dir. Maven runs
 * offline first (everything already in ~/.m2), then online; throws with Maven's last lines when
 * neither resolves.
 */
function debeziumClasspath() {
  const hash = createHash('sha256').update(readFileSync(POM)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'pgferry-maven-classpath');
  const file = join(dir, `debezium-${hash}.txt`);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dir, { recursive: true });
  let out = '';
  for (const offline of [true, false]) {
    const args = [...(offline ? ['-o'] : []), '-q', '-B', '-f', POM, 'dependency:build-classpath'];
    const r = spawnSync('mvn', [...args, `-Dmdep.outputFile=${file}`], { encoding: 'utf8' });
    if (r.error) throw new Error(`mvn could not run (${r.error.message}): install Maven 3.8+ and Java 17`);
    if (r.status === 0 && existsSync(file)) return readFileSync(file, 'utf8').trim();
    out = `${r.stdout}${r.stderr}`;
  }
  throw new Error(`mvn could not resolve ${POM}:\n${out.split('\n').slice(-15).join('\n')}`);
}

/** GET a JSON document; null when the server does not answer 200 (yet). */
function getJson(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (b) => (body += b));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

const properties = (obj) =>
  Object.entries(obj)
    .map(([k, v]) => `${k}=${String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`)
    .join('\n') + '\n';

/**
 * Debezium's PostgreSQL source connector: pgoutput, its own slot and publication (created for the
 * listed tables only), an initial snapshot then the stream. `prefix` starts every topic name
 * (`<prefix>.<schema>.<table>`).
 */
function postgresSource({ name, cluster, database, prefix, tables, slot }) {
  return {
    name,
    'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
    'tasks.max': 1,
    'database.hostname': cluster.host,
    'database.port': cluster.port,
    'database.user': cluster.user,
    'database.password': cluster.password,
    'database.dbname': database,
    'plugin.name': 'pgoutput',
    'slot.name': slot,
    'publication.name': slot,
    'publication.autocreate.mode': 'filtered',
    'snapshot.mode': 'initial',
    'topic.prefix': prefix,
    'table.include.list': tables.join(','),
    // Connect creates the topics (brokers need not auto-create them): one partition each, as
    // Debezium's table topics usually are, so every change of a table stays in commit order.
    'topic.creation.default.replication.factor': 1,
    'topic.creation.default.partitions': 1,
  };
}

/**
 * Debezium's JDBC sink: reads Debezium envelopes from `topics` and writes them into the table of
 * the same name in `database` (created beforehand: schema.evolution none). Keyed tables are
 * upserted by the record key and deletes applied; keyless tables take plain inserts. Tuned as
 * Debezium's documentation suggests for throughput: `batchSize` records per statement batch
 * (default 500 in the sink; 5000 here) with as many records per consumer poll, and the reduction
 * buffer (only the last change of a key in a batch is written, as pgferry's applier does).
 * Hibernate's own DriverManager provider stands in for Agroal, which Maven Central lacks at the
 * version the sink names.
 */
function jdbcSink({ name, cluster, database, topics, keyed, batchSize = 5000 }) {
  return {
    name,
    'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
    'tasks.max': 1,
    topics: topics.join(','),
    'connection.url': `jdbc:postgresql://${cluster.host}:${cluster.port}/${database}`,
    'connection.username': cluster.user,
    'connection.password': cluster.password,
    'connection.provider':
      'org.hibernate.engine.jdbc.connections.internal.DriverManagerConnectionProviderImpl',
    'insert.mode': keyed ? 'upsert' : 'insert',
    'primary.key.mode': keyed ? 'record_key' : 'none',
    'delete.enabled': keyed,
    'schema.evolution': 'none',
    'collection.name.format': '${source.table}',
    'use.time.zone': 'UTC',
    'batch.size': batchSize,
    'consumer.override.max.poll.records': batchSize,
    'use.reduction.buffer': keyed,
  };
}

// log4j2 in its properties format (YAML would need Jackson's YAML module on the classpath).
const LOG4J = `appender.file.type = File
appender.file.name = FILE
appender.file.fileName = \${sys:connect.log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.debezium.name = io.debezium.connector.postgresql
logger.debezium.level = INFO
logger.metrics.name = io.debezium.metrics
logger.metrics.level = ERROR
`;

/**
 * Starts Kafka Connect standalone in `dir` with `connectors` (objects from postgresSource and
 * jdbcSink), on `bootstrap`. Converters: JSON with schemas, which the JDBC sink needs (Avro needs
 * a schema registry converter that Maven Central does not serve). Offsets are flushed every
 * second, so the slot is confirmed about as often as pgferry confirms it. Property files hold
 * passwords: written 0600, never on the command line. Returns { pid, rest, status(name),
 * logTail(), stop() }; stop() is SIGTERM, then SIGKILL after 20 s, and resolves on exit.
 */
async function startConnect({ dir, bootstrap, connectors, heapMb = 1024 }) {
  mkdirSync(dir, { recursive: true });
  const restPort = await freePort();
  const worker = join(dir, 'worker.properties');
  writeFileSync(
    worker,
    properties({
      'bootstrap.servers': bootstrap,
      'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
      'key.converter.schemas.enable': true,
      'value.converter.schemas.enable': true,
      'offset.storage.file.filename': join(dir, 'offsets.dat'),
      'offset.flush.interval.ms': 1000,
      listeners: `http://127.0.0.1:${restPort}`,
      'plugin.discovery': 'service_load',
      'connector.client.config.override.policy': 'All',
    }),
    { mode: 0o600 },
  );
  const files = connectors.map((c) => {
    const f = join(dir, `${c.name}.properties`);
    writeFileSync(f, properties(c), { mode: 0o600 });
    return f;
  });
  writeFileSync(join(dir, 'log4j2.properties'), LOG4J);
  const log = join(dir, 'connect.log');
  const child = spawn(
    'java',
    [
      `-Xmx${heapMb}m`,
      `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
      `-Dconnect.log.file=${log}`,
      '-cp',
      debeziumClasspath(),
      'org.apache.kafka.connect.cli.ConnectStandalone',
      worker,
      ...files,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (b) => (stderr = (stderr + b).slice(-20000)));
  const exited = new Promise((r) => child.once('exit', (code, signal) => r(code ?? signal)));
  const rest = `http://127.0.0.1:${restPort}`;
  const logTail = (n = 40) => {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    return `${text.split('\n').slice(-n).join('\n')}${stderr ? `\n(stderr)\n${stderr.slice(-4000)}` : ''}`;
  };
  return {
    pid: child.pid,
    rest,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
    logTail,
    /** A connector's state and its task's state and trace, from Connect's REST API (null before it answers). */
    async status(name) {
      const s = await getJson(`${rest}/connectors/${encodeURIComponent(name)}/status`);
      if (!s) return null;
      const task = s.tasks?.[0];
      return { state: s.connector?.state, task: task?.state, trace: task?.trace ?? s.connector?.trace };
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

module.exports = { debeziumClasspath, postgresSource, jdbcSink, startConnect };
