import { Writable } from 'node:stream';
import { createLogger } from './log';
import { REDACTED, redact, redactString } from './redact';

describe('redactString', () => {
  it.each([
    ['postgres://app:s3cr%40t@db:5432/shop', `postgres://app:${REDACTED}@db:5432/shop`],
    ['connecting to postgresql://u:p@h/d failed', `connecting to postgresql://u:${REDACTED}@h/d failed`],
    ['host=db user=app password=hunter2 dbname=x', `host=db user=app password=${REDACTED} dbname=x`],
    ["password='with space' sslmode=require", `password=${REDACTED} sslmode=require`],
    ['http://reg:8081/?token=abc&x=1', `http://reg:8081/?token=${REDACTED}&x=1`],
    ['postgres://app@db/shop', 'postgres://app@db/shop'],
  ])('%s', (input, expected) => {
    expect(redactString(input)).toBe(expected);
  });
});

describe('redact', () => {
  it('replaces secret-named keys at any depth and scrubs strings', () => {
    const out = redact({
      source: { host: 'db', password: 'p1', url: 'postgres://a:p2@db/x' },
      kafka: { sasl: { username: 'u', password: 'p3' } },
      list: [{ apiKey: 'k' }],
    });
    expect(JSON.stringify(out)).not.toMatch(/p1|p2|p3|"k"/);
    expect(out.source.host).toBe('db');
    expect(out.kafka.sasl.username).toBe('u');
  });

  it('redacts errors, their messages and causes', () => {
    const err = new Error('login to postgres://u:topsecret@h/d failed', {
      cause: new Error('password=topsecret'),
    });
    expect(JSON.stringify(redact({ err }))).not.toContain('topsecret');
  });
});

describe('createLogger', () => {
  it('never writes a password, whether in a field, a URL or the message', () => {
    let written = '';
    const sink = new Writable({
      write(chunk, _enc, cb) {
        written += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ destination: sink, level: 'info' });
    log.info(
      { source: { url: 'postgres://app:pw-one@db/x', password: 'pw-two' } },
      'connecting to postgres://app:pw-three@db/x',
    );
    log.error({ err: new Error('auth failed for password=pw-four') }, 'failed');
    expect(written).toContain('connecting to postgres://app:[redacted]@db/x');
    expect(written).not.toMatch(/pw-one|pw-two|pw-three|pw-four/);
  });
});
