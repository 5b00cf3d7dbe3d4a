// The two pipelines the debezium benchmark drives the same way: each is started, reports its
// health, names its topics, decodes its probe records and stops, leaving nothing on the source.
const { spawn, spawnSync } = require('node:child_process');
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { setTimeout } = require('node:timers');
const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');
const { freePort } = require('@pgferry/testing');
const { cli, spawnMigrate } = require('./pgferry');
const { jdbcSink, postgresSource, startConnect } = require('./debezium');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The Confluent-compatible schema registry both pipelines use: pgferry's, over the bench's Kafka
 * (`pgferry registry --kafka`), its schemas in the `_schemas` topic there.
 */
async function startRegistry(bootstrap) {
  const port = await freePort();
  const args = ['registry', '--kafka', bootstrap, '--port', String(port)];
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (out += b));
  for (let i = 0; !out.includes('schema registry http'); i++) {
    if (child.exitCode !== null || i > 300) throw new Error(`the schema registry did not start:\n${out}`);
    await sleep(100);
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Debezium: Kafka Connect standalone with the PostgreSQL source connector and, when `destination`
 * is given ({ cluster, database }), two JDBC sinks into it (keyed tables upserted, the keyless
 * one inserted). Its slot and publication are dropped by stop().
 */
function debeziumPipeline({ run, dir, bootstrap, src, database, tables, keyless, destination }) {
  const prefix = `dbz${run}`;
  const slot = `dbz_${run}`;
  const topic = (t) => `${prefix}.public.${t}`;
  let connect = null;
  const names = ['source', ...(destination ? ['sink_keyed', 'sink_keyless'] : [])].map((n) => `${n}_${run}`);
  return {
    label: destination ? 'Debezium source + JDBC sink' : 'Debezium source',
    topic,
    destination,
    pids: () => (connect ? [connect.pid] : []),
    async start() {
      const keyed = tables.filter((t) => !keyless.includes(t));
      const connectors = [
        postgresSource({
          name: names[0],
          cluster: src,
          database,
          prefix,
          slot,
          tables: tables.map((t) => `public.${t}`),
        }),
      ];
      if (destination) {
        const to = { cluster: destination.cluster, database: destination.database };
        connectors.push(jdbcSink({ name: names[1], ...to, topics: keyed.map(topic), keyed: true }));
        connectors.push(jdbcSink({ name: names[2], ...to, topics: keyless.map(topic), keyed: false }));
      }
      connect = await startConnect({ dir, bootstrap, connectors });
    },
    /** Throws with Connect's own words when the JVM exited or a connector or task failed. */
    async health() {
      if (!connect.running()) throw new Error(`Kafka Connect exited:\n${connect.logTail()}`);
      for (const n of names) {
        const s = await connect.status(n);
        if (s && (s.state === 'FAILED' || s.task === 'FAILED'))
          throw new Error(`Debezium connector ${n} failed: ${s.trace ?? ''}\n${connect.logTail(20)}`);
      }
    },
    streaming: async () => {},
    /** A record value as { op, after } (JSON with schemas: the envelope is its payload). */
    decode: async (buf) => JSON.parse(buf.toString()).payload,
    logTail: () => (connect ? connect.logTail() : ''),
    async stop() {
      if (connect) await connect.stop();
      const s = await src.connect(database);
      try {
        for (let i = 0; i < 100; i++) {
          const { rows } = await s.query(`SELECT active FROM pg_replication_slots WHERE slot_name = $1`, [
            slot,
          ]);
          if (!rows.length) break;
          if (!rows[0].active) {
            await s.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
            break;
          }
          await sleep(100);
        }
        await s.query(`DROP PUBLICATION IF EXISTS "${slot}"`);
      } finally {
        await s.end();
      }
    },
  };
}

/**
 * pgferry: `pgferry migrate` with an incremental task on real Kafka (its registry beside it):
 * schema, snapshot, then changes until stop(), which cuts over and releases the source.
 */
function pgferryPipeline({ run, dir, bootstrap, registry, src, database, destination, name }) {
  const prefix = `ferry${run}`;
  const topic = (t) => `${prefix}.public.${t}`;
  const spec = join(dir, 'spec.json');
  let child = null;
  let out = '';
  let err = '';
  // What pgferry said last: its error lines, then the end of its progress output.
  const said = () =>
    `${err.trim().slice(-3000)}\n(last output)\n${out.trim().split('\n').slice(-8).join('\n')}`;
  const decoder = new SchemaRegistry({ host: registry.url });
  return {
    label: 'pgferry migrate (capture + applier)',
    topic,
    destination,
    pids: () => (child ? [child.pid, registry.pid] : [registry.pid]),
    async start() {
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        spec,
        JSON.stringify({
          name,
          source: { url: src.url(database) },
          destination: { url: destination.cluster.url(destination.database) },
          migrationTypes: { incremental: true },
          kafka: { brokers: [bootstrap], schemaRegistryUrl: registry.url, topicPrefix: prefix },
        }),
        { mode: 0o600 },
      );
      child = spawnMigrate(spec, join(dir, 'work'), { stderr: 'pipe' });
      child.stdout.on('data', (b) => (out = (out + b).slice(-20000)));
      child.stderr.on('data', (b) => (err = (err + b).slice(-20000)));
    },
    async health() {
      if (child.exitCode !== null)
        throw new Error(`pgferry migrate exited with ${child.exitCode}:\n${said()}`);
    },
    /** Resolves once the incremental phase runs: pgferry streams after its full load. */
    async streaming() {
      const d = await destination.cluster.connect(destination.database);
      try {
        for (;;) {
          await this.health();
          const { rows } = await d
            .query(`SELECT status FROM pgferry.phases WHERE task = $1 AND phase = 'incremental'`, [name])
            .catch(() => ({ rows: [] }));
          if (rows[0]?.status === 'running') return;
          await sleep(200);
        }
      } finally {
        await d.end();
      }
    },
    /** A record value as { op, after } (Avro in the Confluent wire format, schema from the registry). */
    decode: (buf) => decoder.decode(buf),
    logTail: said,
    async stop() {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        const cut = spawnSync(process.execPath, [cli, 'cutover', '--spec', spec, '--timeout', '300'], {
          encoding: 'utf8',
        });
        if (cut.status !== 0) child.kill('SIGTERM');
        await exited;
        if (cut.status !== 0) out += `\npgferry cutover failed:\n${cut.stdout}${cut.stderr}`;
      }
      const rel = spawnSync(process.execPath, [cli, 'release', '--spec', spec], { encoding: 'utf8' });
      if (rel.status !== 0) throw new Error(`pgferry release failed:\n${rel.stdout}${rel.stderr}`);
    },
  };
}

module.exports = { startRegistry, debeziumPipeline, pgferryPipeline };
