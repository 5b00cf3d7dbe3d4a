import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { AuthenticationError } from '@pgferry/core';
import { RegistryClient, registryUrlWithCredentials } from '@pgferry/avro';
import { withKafkaAdmin } from '@pgferry/kafka';
import { makeTestCertificates, waitFor, type TestCertificates } from '@pgferry/testing';
import { startEmbeddedKafka, type EmbeddedKafka } from './start-embedded-kafka';

const execFileP = promisify(execFile);
const user = { username: 'pgferry', password: 'per-run-S3cret' };
const schema = {
  type: 'record',
  name: 'Row',
  namespace: 'auth.test',
  fields: [{ name: 'id', type: 'long' }],
};

/** Warnings the broker logs, to check what it says about a refused client. */
function recordingLogger() {
  const lines: string[] = [];
  const log = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, logger: { warn: log, info: log, debug: log, error: log } as never };
}

describe('the embedded broker and registry require the run credentials', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-auth-'));
  const { lines, logger } = recordingLogger();
  let kafka: EmbeddedKafka;
  beforeAll(async () => {
    kafka = await startEmbeddedKafka({ dataDir, port: 0, registryPort: 0, sasl: user, logger });
  });
  afterAll(async () => {
    await kafka?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const kafkajs = (sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; password?: string }) =>
    new Kafka({
      clientId: 'auth-test',
      brokers: kafka.brokers,
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      sasl: sasl && {
        mechanism: sasl.mechanism,
        username: user.username,
        password: sasl.password ?? user.password,
      },
    } as ConstructorParameters<typeof Kafka>[0]);

  it('refuses kafkajs without SASL: the connection is closed at its first request, and the broker says why', async () => {
    const admin = kafkajs().admin();
    await expect(admin.connect().then(() => admin.listTopics())).rejects.toThrow();
    await admin.disconnect();
    await waitFor(
      () => lines.some((l) => l.includes('closing connection: Metadata before SASL authentication')),
      {
        timeout: 5_000,
        reason: 'the broker logs the unauthenticated request',
      },
    );
  });

  it('refuses kafkajs with a wrong password with SASL_AUTHENTICATION_FAILED', async () => {
    for (const mechanism of ['plain', 'scram-sha-256'] as const) {
      const admin = kafkajs({ mechanism, password: 'guess' }).admin();
      const err = await admin.connect().catch((e) => e);
      await admin.disconnect();
      expect(err).toBeInstanceOf(Error);
      expect(String(err.message)).toContain(
        `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism.toUpperCase()}`,
      );
    }
  });

  it('serves kafkajs with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512: produced records are consumed', async () => {
    const producerKafka = kafkajs({ mechanism: 'scram-sha-256' });
    const admin = producerKafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'auth.rows' }] });
    await admin.disconnect();
    const producer = producerKafka.producer();
    await producer.connect();
    await producer.send({ topic: 'auth.rows', messages: [{ key: 'k', value: 'v1' }] });
    await producer.disconnect();
    for (const mechanism of ['plain', 'scram-sha-512'] as const) {
      const consumer = kafkajs({ mechanism }).consumer({ groupId: `auth-${mechanism}` });
      const seen: string[] = [];
      await consumer.connect();
      await consumer.subscribe({ topic: 'auth.rows', fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(String(message.value)) });
      await waitFor(() => seen.length > 0, {
        timeout: 20_000,
        reason: `a ${mechanism} consumer reads the record`,
      });
      await consumer.disconnect();
      expect(seen).toEqual(['v1']);
    }
  });

  it("pgferry's own client authenticates with SCRAM, and names the failure with a wrong password", async () => {
    const config = { clientId: 'auth-test', brokers: kafka.brokers };
    const sasl = { mechanism: 'scram-sha-256' as const, ...user };
    expect(await withKafkaAdmin({ ...config, sasl }, (a) => a.listTopics())).toContain('auth.rows');
    const err = await withKafkaAdmin({ ...config, sasl: { ...sasl, password: 'guess' } }, (a) =>
      a.listTopics(),
    ).catch((e) => e);
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.message).toContain(
      'Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256; check kafka.sasl.username and its password',
    );
    expect(err.message).not.toContain('guess');
  });

  it('kcat (librdkafka) lists the broker with the credentials and is refused without them', async () => {
    if (spawnSync('kcat', ['-V']).error) throw new Error('kcat is not installed: run apt-get install kcat');
    const b = kafka.brokers[0];
    const sasl = ['-X', 'security.protocol=sasl_plaintext', '-X', 'sasl.mechanisms=SCRAM-SHA-256'];
    const creds = ['-X', `sasl.username=${user.username}`, '-X', `sasl.password=${user.password}`];
    const { stdout } = await execFileP('kcat', ['-b', b, ...sasl, ...creds, '-L', '-m', '5'], {
      timeout: 30_000,
    });
    expect(stdout).toContain(`broker 0 at ${b}`);
    const wrong = ['-X', `sasl.username=${user.username}`, '-X', 'sasl.password=guess'];
    const refused = await execFileP('kcat', ['-b', b, ...sasl, ...wrong, '-L', '-m', '5'], {
      timeout: 30_000,
    }).catch((e) => e);
    expect(refused.code).not.toBe(0);
    expect(String(refused.stderr)).toMatch(/Authentication failed|SASL authentication error/);
  });

  it('the registry answers 401 to a request without the credentials and serves one with them', async () => {
    const plain = await fetch(`${kafka.registryUrl}/subjects`);
    expect(plain.status).toBe(401);
    expect(plain.headers.get('www-authenticate')).toContain('Basic');
    expect(await plain.json()).toEqual({
      error_code: 401,
      message:
        'Unauthorized: this schema registry requires HTTP basic authentication with the credentials of its pgferry run',
    });
    const wrong = await fetch(`${kafka.registryUrl}/subjects`, {
      headers: { authorization: `Basic ${Buffer.from(`${user.username}:guess`).toString('base64')}` },
    });
    expect(wrong.status).toBe(401);

    const anonymous = new RegistryClient(kafka.registryUrl!);
    await expect(anonymous.register('auth.rows-value', schema)).rejects.toThrow(
      'schema registry POST /subjects/auth.rows-value/versions: 401 ',
    );
    await expect(anonymous.register('auth.rows-value', schema)).rejects.toThrow(
      /the registry requires credentials; set kafka.schemaRegistry.username and password$/,
    );
    const client = new RegistryClient(
      registryUrlWithCredentials(kafka.registryUrl!, user.username, user.password),
    );
    const id = await client.register('auth.rows-value', schema);
    expect(await client.schema(id)).toMatchObject({ type: 'record', fields: schema.fields });
  });
});

describe('the embedded broker over TLS', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-tls-broker-'));
  let certs: TestCertificates;
  let kafka: EmbeddedKafka;
  beforeAll(async () => {
    certs = makeTestCertificates();
    kafka = await startEmbeddedKafka({
      dataDir,
      port: 0,
      host: '127.0.0.1',
      advertisedHost: 'localhost',
      registryPort: null,
      sasl: user,
      tls: { cert: certs.cert, key: certs.key },
    });
  });
  afterAll(async () => {
    await kafka?.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(certs.dir, { recursive: true, force: true });
  });

  const config = (tls: object) => ({
    clientId: 'tls-test',
    brokers: [`localhost:${kafka.broker.port}`],
    tls,
    sasl: { mechanism: 'scram-sha-512' as const, ...user },
    connectTimeoutMs: 5_000,
  });

  it('pgferry creates and lists topics when the CA verifies the broker', async () => {
    await withKafkaAdmin(config({ ca: certs.ca }), (a) =>
      a.ensureTopics([{ name: 'tls.rows', partitions: 1 }]),
    );
    expect(await withKafkaAdmin(config({ ca: certs.ca }), (a) => a.listTopics())).toContain('tls.rows');
  });

  it('refuses a broker its CA did not sign, and a certificate for another name, with errors naming kafka.tls', async () => {
    const wrongCa = await withKafkaAdmin(config({ ca: certs.otherCa }), (a) => a.listTopics()).catch(
      (e) => e,
    );
    expect(wrongCa).toBeInstanceOf(AuthenticationError);
    expect(wrongCa.message).toMatch(
      /^connecting to Kafka bootstrap server localhost:\d+: TLS: .*; check kafka\.tls \(ca, serverName\) against the broker's certificate$/,
    );
    const wrongName = await withKafkaAdmin(config({ ca: certs.ca, servername: 'kafka.example.com' }), (a) =>
      a.listTopics(),
    ).catch((e) => e);
    expect(wrongName).toBeInstanceOf(AuthenticationError);
    expect(wrongName.message).toContain("Host: kafka.example.com. is not in the cert's altnames");
  });

  it('kafkajs reads the topic over TLS with the CA', async () => {
    const admin = new Kafka({
      clientId: 'tls-kafkajs',
      brokers: [`localhost:${kafka.broker.port}`],
      ssl: { ca: [certs.ca] },
      sasl: { mechanism: 'scram-sha-256', ...user },
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    }).admin();
    await admin.connect();
    expect(await admin.listTopics()).toContain('tls.rows');
    await admin.disconnect();
  });
});
