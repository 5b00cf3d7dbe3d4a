import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpecError } from './errors';
import { loadTaskSpec, parseTaskSpec } from './spec';

const minimal = {
  name: 'orders_move',
  source: { url: 'postgres://app:secret@db1:5432/shop' },
  destination: { host: 'db2', user: 'app', password: 'x', database: 'shop' },
};

function problems(input: unknown): string[] {
  try {
    parseTaskSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).issues;
  }
  throw new Error('expected the spec to be rejected');
}

describe('parseTaskSpec', () => {
  it('fills every default for a minimal spec', () => {
    const spec = parseTaskSpec(minimal);
    expect(spec.migrationTypes).toEqual({ schema: true, full: true, incremental: false });
    expect(spec.options).toEqual({
      conflictMode: 'report-error',
      consistency: 'per-key',
      onError: 'strict',
      snapshotWorkers: 4,
      chunkRows: 500000,
      indexBuildMemoryMB: 256,
      snapshotCompression: 'lz4',
      throttle: { full: {}, incremental: {} },
      retry: { connectionMinutes: 720, otherMinutes: 10 },
      lagBoundSeconds: 5,
      stallSeconds: 120,
      schemaChanges: {},
      stream: { capture: 'controller', appliers: 1 },
    });
    expect(spec.objects).toEqual({});
    expect(spec.kafka).toEqual({
      ssl: false,
      allowPlaintextSasl: false,
      resetTopics: false,
      retentionMs: -1,
    });
  });

  it('refuses SASL without TLS unless allowed, naming both options, and cert without key', () => {
    const sasl = { mechanism: 'scram-sha-512', username: 'u', password: 'p' };
    expect(() => parseTaskSpec({ ...minimal, kafka: { brokers: ['k:9093'], sasl } })).toThrow(
      'kafka.sasl: SASL without TLS sends the credentials in clear: give kafka.tls (ca, and cert and key where the brokers ask for a client certificate), or set kafka.allowPlaintextSasl: true on a network you trust',
    );
    expect(
      parseTaskSpec({
        ...minimal,
        kafka: { brokers: ['k:9093'], sasl, tls: { ca: '/etc/ca.pem', serverName: 'kafka' } },
      }).kafka.tls,
    ).toEqual({ ca: '/etc/ca.pem', serverName: 'kafka' });
    expect(
      parseTaskSpec({ ...minimal, kafka: { brokers: ['k:9093'], sasl, allowPlaintextSasl: true } }).kafka
        .sasl,
    ).toEqual(sasl);
    expect(() => parseTaskSpec({ ...minimal, kafka: { tls: { cert: '/etc/c.pem' } } })).toThrow(
      'kafka.tls: cert and key must be given together (client certificate authentication)',
    );
    expect(() => parseTaskSpec({ ...minimal, kafka: { schemaRegistry: { username: 'r' } } })).toThrow(
      'kafka.schemaRegistry: username and password must be given together (HTTP basic authentication)',
    );
  });

  it('kafka.retentionMs is -1 (forever) or at least a minute; kafka.maxMessageBytes at least 1 kB', () => {
    expect(parseTaskSpec({ ...minimal, kafka: { retentionMs: 86_400_000 } }).kafka.retentionMs).toBe(
      86_400_000,
    );
    expect(problems({ ...minimal, kafka: { retentionMs: 0, maxMessageBytes: 10 } })).toEqual([
      'kafka.retentionMs: must be -1 (keep forever) or at least 60000 ms',
      'kafka.maxMessageBytes: Number must be greater than or equal to 1024',
    ]);
  });

  it('accepts a full spec with selection, renames, kafka and TLS', () => {
    const spec = parseTaskSpec({
      ...minimal,
      source: { url: 'postgres://app@db1/shop', ssl: { mode: 'verify-full', ca: '/etc/ca.pem' } },
      migrationTypes: { incremental: true },
      objects: {
        include: [
          {
            schema: 'Sales Dept',
            tables: ['Orders', 'línea'],
            renameTo: 'sales',
            renameTables: { Orders: 'orders' },
          },
        ],
        exclude: [{ schema: 'audit' }],
      },
      kafka: {
        brokers: ['k1:9092', 'k2:9092'],
        schemaRegistryUrl: 'http://reg:8081',
        topicPrefix: 'pgf.shop',
      },
      options: { consistency: 'transactional', retry: { connectionMinutes: 5 } },
    });
    expect(spec.migrationTypes.incremental).toBe(true);
    expect(spec.options.retry).toEqual({ connectionMinutes: 5, otherMinutes: 10 });
    expect(spec.objects.include?.[0].tables).toEqual(['Orders', 'línea']);
  });

  it.each([
    [
      { ...minimal, name: 'Bad-Name' },
      'name: must start with a lower-case letter and hold only a-z, 0-9 and _, at most 40 characters (it names the replication slot pgferry_<name>)',
    ],
    [{ ...minimal, source: undefined }, 'source: is required'],
    [{ ...minimal, source: {} }, 'source: give url, or host (with port, database, user, password)'],
    [
      { ...minimal, destination: { host: 'db2', port: 70000 } },
      'destination.port: Number must be less than or equal to 65535',
    ],
    [
      { ...minimal, destination: { host: 'db2', port: '5432' } },
      'destination.port: expected number, got string',
    ],
    [{ ...minimal, extra: 1 }, '(root): unknown field "extra"'],
    [
      { ...minimal, source: { url: 'postgres://x', ssl: { mode: 'verify-full' } } },
      'source.ssl: mode verify-ca and verify-full need ca (the certificate authority that signed the server certificate)',
    ],
    [
      { ...minimal, source: { url: 'postgres://x', ssl: { mode: 'sometimes' } } },
      'source.ssl.mode: must be one of "disable", "prefer", "require", "verify-ca", "verify-full", got "sometimes"',
    ],
    [
      { ...minimal, source: { url: 'postgres://x', ssl: { cert: '/c.pem' } } },
      'source.ssl: cert and key must be given together (client certificate authentication)',
    ],
    [
      { ...minimal, migrationTypes: { schema: false, full: false } },
      'migrationTypes: choose at least one of schema, full, incremental',
    ],
    [
      { ...minimal, objects: { include: [{ schema: 'a', tables: [] }] } },
      'objects.include[0].tables: Array must contain at least 1 element(s)',
    ],
    [{ ...minimal, kafka: { brokers: ['k1'] } }, 'kafka.brokers[0]: must be host:port'],
    [
      { ...minimal, options: { consistency: 'eventual' } },
      'options.consistency: must be one of "per-key", "transactional", got "eventual"',
    ],
    [
      { ...minimal, options: { snapshotWorkers: 0 } },
      'options.snapshotWorkers: Number must be greater than or equal to 1',
    ],
  ])('rejects a bad spec with an exact message (%#)', (input, message) => {
    expect(problems(input)).toEqual([message]);
  });

  it('takes a stream outside migrate, and refuses several transactional appliers', () => {
    const kafka = { brokers: ['k:9092'], schemaRegistryUrl: 'http://r:8081' };
    expect(
      parseTaskSpec({ ...minimal, kafka, options: { stream: { capture: 'external', appliers: 0 } } }).options
        .stream,
    ).toEqual({
      capture: 'external',
      appliers: 0,
    });
    expect(() =>
      parseTaskSpec({ ...minimal, options: { consistency: 'transactional', stream: { appliers: 3 } } }),
    ).toThrow(/options\.stream\.appliers: options\.consistency transactional applies whole transactions/);
  });

  it('lists every problem at once', () => {
    const err = (() => {
      try {
        parseTaskSpec({ name: 'x', source: {}, destination: { host: 'h' }, options: { onError: 'ignore' } });
      } catch (e) {
        return e as SpecError;
      }
    })();
    expect(err?.message).toBe(
      'task spec has 2 problems:\n' +
        '  - source: give url, or host (with port, database, user, password)\n' +
        '  - options.onError: must be one of "strict", "dead-letter", got "ignore"',
    );
    expect(err?.retriable).toBe(false);
  });
});

describe('loadTaskSpec', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-spec-'));

  it('reads YAML', () => {
    const file = join(dir, 'task.yaml');
    writeFileSync(
      file,
      'name: t1\nsource:\n  url: postgres://a@h/db\ndestination:\n  url: postgres://a@h2/db\n',
    );
    expect(loadTaskSpec(file).name).toBe('t1');
  });

  it('names the file that is missing', () => {
    expect(() => loadTaskSpec(join(dir, 'nope.yaml'))).toThrow(
      /^task spec: cannot read .*nope\.yaml: ENOENT/,
    );
  });

  it('names the file that does not parse', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: [unclosed\n');
    expect(() => loadTaskSpec(file)).toThrow(/^task spec: .*bad\.yaml is not valid YAML or JSON/);
  });
});
