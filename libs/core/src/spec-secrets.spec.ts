import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeError } from './errors';
import { REDACTED, addKnownSecret, redactString } from './redact';
import { loadTaskSpec, parseTaskSpec } from './spec';
import { expandEnvReferences } from './spec-env';
import { redactTaskSpec, registerSpecSecrets, stripUrlPassword } from './spec-secrets';

describe('expandEnvReferences', () => {
  it('replaces ${NAME} in string values only, $$ writing a $', () => {
    const doc = {
      source: { url: 'postgres://app:${PW}@db/x', host: '${HOST}', port: 5432 },
      list: ['a${HOST}b', 'cost $$5'],
      '${HOST}': 'key stays',
    };
    expect(expandEnvReferences(doc, { PW: 'p@ss', HOST: 'db1' })).toEqual({
      source: { url: 'postgres://app:p@ss@db/x', host: 'db1', port: 5432 },
      list: ['adb1b', 'cost $5'],
      '${HOST}': 'key stays',
    });
  });

  it('names every unset variable and where it is referenced', () => {
    expect(() =>
      expandEnvReferences({ source: { password: '${SRC_PW}' }, destination: { password: '${DST_PW}' } }, {}),
    ).toThrow(
      'task spec has 2 problems:\n  - source.password: environment variable SRC_PW is not set (referenced as ${SRC_PW}); set it, or write $$ for a literal $\n  - destination.password: environment variable DST_PW is not set',
    );
    expect(() => expandEnvReferences({ name: '${not a name}' }, {})).toThrow(
      'name: "${not a name}" is not a variable reference',
    );
  });
});

describe('redactTaskSpec', () => {
  const spec = parseTaskSpec({
    name: 't',
    source: { url: 'postgres://app:s3cret-one@db1/shop?sslmode=require' },
    destination: {
      host: 'db2',
      user: 'app',
      password: 's3cret-two',
      ssl: {
        mode: 'require',
        cert: '/etc/c.pem',
        key: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----',
      },
    },
    kafka: {
      brokers: ['k:9092'],
      sasl: { mechanism: 'plain', username: 'u', password: 's3cret-three' },
      tls: {
        ca: '/etc/kafka-ca.pem',
        cert: '/etc/k.pem',
        key: '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----',
      },
      schemaRegistryUrl: 'https://reg:s3cret-five@reg.example:8081',
      schemaRegistry: { username: 'r', password: 's3cret-four', ca: '/etc/reg-ca.pem' },
    },
  });

  it('keeps no password, no inline key, and everything else', () => {
    const out = redactTaskSpec(spec);
    expect(JSON.stringify(out)).not.toMatch(/s3cret|MIIE/);
    expect(out.source.url).toBe('postgres://app@db1/shop?sslmode=require');
    expect(out.destination).toEqual({
      host: 'db2',
      user: 'app',
      ssl: { mode: 'require', cert: '/etc/c.pem', key: '********' },
    });
    expect(out.kafka.sasl).toEqual({ mechanism: 'plain', username: 'u', password: '********' });
    expect(out.kafka.tls).toEqual({ ca: '/etc/kafka-ca.pem', cert: '/etc/k.pem', key: '********' });
    expect(out.kafka.schemaRegistry).toEqual({ username: 'r', password: '********', ca: '/etc/reg-ca.pem' });
    expect(out.kafka.schemaRegistryUrl).toBe('https://reg@reg.example:8081/');
    expect(out.options).toEqual(spec.options);
    expect(spec.destination.password).toBe('s3cret-two');
  });

  it.each([
    ['postgres://u:p%40ss@h:5/d', 'postgres://u@h:5/d'],
    ['postgresql://u@h/d?password=x&sslmode=disable', 'postgresql://u@h/d?sslmode=disable'],
    ['postgres://h/d', 'postgres://h/d'],
  ])('strips the password of %s', (url, expected) => {
    expect(stripUrlPassword(url)).toBe(expected);
  });
});

describe('known secrets', () => {
  it('are masked wherever they appear, also URL-encoded', () => {
    addKnownSecret('pw:from-file');
    expect(redactString('login as app with pw:from-file failed')).toBe(
      `login as app with ${REDACTED} failed`,
    );
    expect(redactString('postgres://app:pw%3Afrom-file@h/d')).not.toContain('from-file');
  });

  it("include Kafka's and the registry's: SASL and basic-auth passwords, an inline client key", () => {
    registerSpecSecrets(
      parseTaskSpec({
        name: 't',
        source: { url: 'postgres://a@h/d' },
        destination: { url: 'postgres://a@h/e' },
        kafka: {
          tls: { cert: '/c.pem', key: '-----BEGIN PRIVATE KEY-----\nKEYBYTES\n-----END PRIVATE KEY-----' },
          sasl: { mechanism: 'scram-sha-256', username: 'u', password: 'sasl-pw-1' },
          schemaRegistry: { username: 'r', password: 'registry-pw-2' },
        },
      }),
    );
    const line = redactString(
      'sasl-pw-1 registry-pw-2 -----BEGIN PRIVATE KEY-----\nKEYBYTES\n-----END PRIVATE KEY-----',
    );
    expect(line).not.toMatch(/sasl-pw-1|registry-pw-2|KEYBYTES/);
  });
});

describe('spec file errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-spec-secrets-'));

  it.each([
    ['an unclosed quote', 'name: t\nsource:\n  password: "hunter2-yaml\n  host: h\n'],
    ['a bad flow map', 'name: t\nsource: {password: hunter2-yaml], host: h}\n'],
    ['bad JSON', '{"name": "t", "source": {"password": "hunter2-yaml" "host": 1}}'],
  ])('never quote the line of %s', (_what, text) => {
    const file = join(dir, 'task.yaml');
    writeFileSync(file, text);
    let message = '';
    try {
      loadTaskSpec(file);
    } catch (err) {
      message = describeError(err);
    }
    expect(message).toMatch(/is not valid YAML or JSON: .* at line \d+, column \d+$/);
    expect(message).not.toContain('hunter2');
  });
});
