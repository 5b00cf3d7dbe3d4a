import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startEmbeddedKafka, type EmbeddedKafka } from '@pgferry/kafka-broker';
import {
  captureOutput,
  makeTestCertificates,
  startPostgres,
  tableDigest,
  type PgCluster,
  type TestCertificates,
  waitFor,
} from '@pgferry/testing';
import { RegistryClient } from '@pgferry/avro';
import { withKafkaAdmin } from '@pgferry/kafka';
import { runMigrate } from './migrate-command';
import { runReplayCommand } from './replay-command';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

/**
 * Kafka and the registry of a "real cluster" reached over TLS with CA verification, SASL and
 * HTTP basic auth, all given in the spec (kafka.tls, kafka.sasl, kafka.schemaRegistry): the
 * embedded broker and registry with a certificate for localhost signed by a CA made here.
 */
describe('pgferry migrate to a Kafka and registry over TLS', () => {
  const user = { username: 'ferry', password: 'tls-S3cret-pw' };
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-kafka-tls-'));
  let source: PgCluster;
  let destination: PgCluster;
  let certs: TestCertificates;
  let kafka: EmbeddedKafka;
  beforeAll(async () => {
    certs = makeTestCertificates();
    [source, destination, kafka] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startEmbeddedKafka({
        dataDir: join(dir, 'kafka'),
        port: 0,
        host: '127.0.0.1',
        advertisedHost: 'localhost',
        registryPort: 0,
        sasl: user,
        tls: { cert: certs.cert, key: certs.key },
      }),
    ]);
    await source.createDatabase('shop');
    await source.query(
      'CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, $$n$$ || g FROM generate_series(1, 2000) g',
      [],
      'shop',
    );
  });
  afterAll(async () => {
    await kafka?.close();
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  /** A spec file for task `name` into database `db`, its kafka section changed by `kafkaChange`. */
  async function specFile(name: string, db: string, kafkaChange: (k: Record<string, unknown>) => void) {
    await destination.createDatabase(db);
    const kafkaSpec: Record<string, unknown> = {
      brokers: [`localhost:${kafka.broker.port}`],
      schemaRegistryUrl: kafka.registryUrl,
      tls: { ca: certs.caFile },
      sasl: { mechanism: 'scram-sha-512', ...user },
      schemaRegistry: { ...user, ca: certs.caFile },
    };
    kafkaChange(kafkaSpec);
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      stringify({
        name,
        source: { url: `postgres://postgres@${source.host}:${source.port}/shop`, password: source.password },
        destination: {
          url: `postgres://postgres@${destination.host}:${destination.port}/${db}`,
          password: destination.password,
        },
        kafka: kafkaSpec,
      }),
      { mode: 0o600 },
    );
    return file;
  }

  it('copies every row with the CA verifying the broker and the registry (children read the CA files)', async () => {
    const out = captureOutput();
    const { code } = await runMigrate({
      spec: await specFile('tlsok', 'ok', () => undefined),
      workDir: join(dir, 'tlsok'),
      out: out.out,
    });
    expect({ code, out: code ? out.text() : '' }).toEqual({ code: 0, out: '' });
    expect(out.text()).not.toContain(user.password);
    const s = await source.connect('shop');
    const d = await destination.connect('ok');
    try {
      expect(await tableDigest(d, 'public', 'orders', ['id'])).toEqual(
        await tableDigest(s, 'public', 'orders', ['id']),
      );
      // Replay from the same Kafka, with TLS, SASL and the registry's credentials given like a
      // spec's kafka section (--kafka-config).
      const config = join(dir, 'kafka-config.yaml');
      writeFileSync(
        config,
        stringify({
          tls: { ca: certs.caFile },
          sasl: { mechanism: 'scram-sha-512', ...user },
          schemaRegistry: { ...user, ca: certs.caFile },
        }),
        { mode: 0o600 },
      );
      await destination.createDatabase('replayed');
      const replayed = captureOutput();
      const code = await runReplayCommand({
        from: 'tlsok',
        target: destination.url('replayed'),
        kafka: `localhost:${kafka.broker.port}`,
        schemaRegistry: kafka.registryUrl,
        kafkaConfig: config,
        workDir: join(dir, 'replay-tlsok'),
        out: replayed.out,
      });
      expect({ code, out: replayed.text() }).toEqual({ code: 0, out: expect.stringContaining('done ') });
      expect(replayed.text()).not.toContain(user.password);
      const r = await destination.connect('replayed');
      try {
        expect(await tableDigest(r, 'public', 'orders', ['id'])).toEqual(
          await tableDigest(s, 'public', 'orders', ['id']),
        );
      } finally {
        await r.end();
      }
    } finally {
      await Promise.all([s.end(), d.end()]);
    }
  });

  it.each([
    [
      'a CA that did not sign the broker',
      (k: Record<string, unknown>) => (k.tls = { ca: certs.otherCaFile }),
      /TLS: .*(unable to verify|self.signed|certificate).*; check kafka\.tls \(ca, serverName\) against the broker's certificate/,
    ],
    [
      'a server name the certificate does not carry',
      (k: Record<string, unknown>) => (k.tls = { ca: certs.caFile, serverName: 'kafka.example.com' }),
      /TLS: .*Host: kafka\.example\.com\. is not in the cert's altnames.*; check kafka\.tls \(ca, serverName\)/,
    ],
    [
      'a registry CA that did not sign the registry',
      (k: Record<string, unknown>) => (k.schemaRegistry = { ...user, ca: certs.otherCaFile }),
      /schema registry https:\/\/127\.0\.0\.1:\d+: TLS: .*; check schemaRegistryUrl and kafka\.schemaRegistry\.ca \(and serverName\) against the registry's certificate/,
    ],
    [
      'no registry credentials',
      (k: Record<string, unknown>) => (k.schemaRegistry = { ca: certs.caFile }),
      /401 .*the registry requires credentials; set kafka\.schemaRegistry\.username and password/,
    ],
  ])('stops with an error naming the option for %s, and copies nothing', async (_what, change, message) => {
    const db = `bad${Math.random().toString(36).slice(2, 8)}`;
    const out = captureOutput();
    const err = await runMigrate({
      spec: await specFile(db, db, change),
      workDir: join(dir, db),
      out: out.out,
    }).then(
      () => new Error(`migrate succeeded: ${out.text()}`),
      (e) => e,
    );
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(user.password);
    const rows = await destination.query<{ n: number }>(
      // The rows of public.orders, 0 when the schema phase did not even create it.
      `SELECT CASE WHEN to_regclass('public.orders') IS NULL THEN 0
              ELSE (xpath('/row/n/text()', query_to_xml('SELECT count(*) AS n FROM public.orders', false, true, '')))[1]::text::int
              END AS n`,
      [],
      db,
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('pgferry registry --kafka-config keeps its schemas in that Kafka over TLS and SASL, and requires its own basic auth', async () => {
    const config = (ca: string) => {
      const file = join(dir, `registry-${Math.random().toString(36).slice(2, 8)}.yaml`);
      writeFileSync(
        file,
        stringify({
          tls: { ca },
          sasl: { mechanism: 'scram-sha-256', ...user },
          schemaRegistry: { username: 'reader', password: 'registry-pw' },
        }),
        { mode: 0o600 },
      );
      return file;
    };
    const registry = (file: string) => {
      const child = spawn(
        process.execPath,
        [
          MAIN,
          'registry',
          '--kafka',
          `localhost:${kafka.broker.port}`,
          '--kafka-config',
          file,
          '--port',
          '0',
          '--topic',
          '_schemas_cli',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const run = { child, out: '', err: '', code: undefined as number | null | undefined };
      child.stdout!.on('data', (d) => (run.out += d));
      child.stderr!.on('data', (d) => (run.err += d));
      child.once('close', (code) => (run.code = code));
      return run;
    };
    const good = registry(config(certs.caFile));
    try {
      const url = (await waitFor(() => /schema registry (http:\/\/\S+),/.exec(good.out)?.[1], {
        timeout: 30_000,
        reason: `pgferry registry serves (${good.out}${good.err})`,
      }))!;
      expect((await fetch(`${url}/subjects`)).status).toBe(401);
      const client = new RegistryClient(url.replace('http://', 'http://reader:registry-pw@'));
      const id = await client.register('cli-value', {
        type: 'record',
        name: 'Cli',
        fields: [{ name: 'id', type: 'long' }],
      });
      expect(id).toBeGreaterThan(0);
      // The schema went to the TLS broker's topic.
      const topics = await withKafkaAdmin(
        {
          clientId: 'tls-check',
          brokers: [`localhost:${kafka.broker.port}`],
          tls: { ca: certs.ca },
          sasl: { mechanism: 'plain', ...user },
        },
        (a) => a.topicEnds(['_schemas_cli']),
      );
      expect([...topics.values()].reduce((a, b) => a + b, 0n)).toBeGreaterThan(0n);
    } finally {
      good.child.kill('SIGTERM');
      await waitFor(() => good.code !== undefined, { timeout: 10_000, reason: 'pgferry registry stops' });
    }
    const bad = registry(config(certs.otherCaFile));
    await waitFor(() => bad.code !== undefined, {
      timeout: 60_000,
      reason: 'pgferry registry gives up on a CA that does not verify',
    });
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/TLS: .*; check kafka\.tls \(ca, serverName\) against the broker's certificate/);
  });
});
