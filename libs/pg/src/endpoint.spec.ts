import { SpecError } from '@pgferry/core';
import { clientConfig, describeEndpoint, resolveEndpoint, tlsOptions } from './endpoint';

describe('resolveEndpoint', () => {
  it('reads a URL with encoded parts and libpq TLS options', () => {
    const ep = resolveEndpoint(
      { url: 'postgresql://us%40er:p%3Ass@db.example:6543/My%20DB?sslmode=require' },
      'source',
    );
    expect(ep).toEqual({
      host: 'db.example',
      port: 6543,
      database: 'My DB',
      user: 'us@er',
      password: 'p:ss',
      ssl: { mode: 'require' },
    });
    expect(describeEndpoint(ep)).toBe('us@er@db.example:6543/My DB');
  });

  it('lets explicit fields override the URL', () => {
    const ep = resolveEndpoint(
      { url: 'postgres://a:b@h/d', port: 7000, ssl: { mode: 'disable' } },
      'destination',
    );
    expect(ep.port).toBe(7000);
    expect(ep.ssl.mode).toBe('disable');
  });

  it.each([
    [
      { url: 'mysql://a@h/d' },
      'task spec: source.url: scheme must be postgres:// or postgresql://, got mysql://',
    ],
    [
      { url: 'postgres://a@h/d?sslmode=maybe' },
      'task spec: source.url: sslmode must be one of disable, prefer, require, verify-ca, verify-full, got "maybe"',
    ],
    [{ host: 'h' }, 'task spec: source: user is required'],
  ])('rejects %j', (spec, message) => {
    expect(() => resolveEndpoint(spec, 'source')).toThrow(SpecError);
    expect(() => resolveEndpoint(spec, 'source')).toThrow(message);
  });
});

describe('tlsOptions', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  it('follows libpq sslmode semantics', () => {
    expect(tlsOptions({ mode: 'disable' }, 'h')).toBe(false);
    expect(tlsOptions({ mode: 'require' }, 'h')).toEqual({ rejectUnauthorized: false });
    const verifyCa = tlsOptions({ mode: 'verify-ca', ca: pem }, 'h') as Record<string, unknown>;
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect(verifyCa.ca).toBe(pem);
    expect(typeof verifyCa.checkServerIdentity).toBe('function');
    const full = tlsOptions({ mode: 'verify-full', ca: pem }, 'db.example') as Record<string, unknown>;
    expect(full).toEqual({ ca: pem, rejectUnauthorized: true, servername: 'db.example' });
  });

  it('names a missing certificate file', () => {
    expect(() => tlsOptions({ mode: 'verify-full', ca: '/nonexistent/ca.pem' }, 'h')).toThrow(
      'ssl.ca: file /nonexistent/ca.pem does not exist',
    );
  });

  it('never puts the password anywhere but the password field', () => {
    const config = clientConfig(resolveEndpoint({ url: 'postgres://a:topsecret@h/d' }, 'source'));
    const { password, ...rest } = config;
    expect(password).toBe('topsecret');
    expect(JSON.stringify(rest)).not.toContain('topsecret');
  });
});
