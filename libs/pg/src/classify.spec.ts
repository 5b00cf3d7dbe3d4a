import {
  AuthenticationError,
  ConnectionError,
  DataError,
  ObjectError,
  PermissionError,
  PgferryError,
  TransientError,
} from '@pgferry/core';
import { classifyPgError } from './classify';

function pgError(code: string, message = 'server said no', extra: Record<string, string> = {}) {
  return Object.assign(new Error(message), { code, severity: 'ERROR', ...extra });
}

const ctx = 'connecting to source app@db:5432/shop';

describe('classifyPgError', () => {
  it.each([
    ['28P01', AuthenticationError, false],
    ['28000', AuthenticationError, false],
    ['42501', PermissionError, false],
    ['3D000', ObjectError, false],
    ['42P01', ObjectError, false],
    ['42P07', ObjectError, false],
    ['42601', DataError, false],
    ['22P02', DataError, false],
    ['23505', DataError, false],
    ['08006', ConnectionError, true],
    ['08001', ConnectionError, true],
    ['57P01', ConnectionError, true],
    ['57P03', ConnectionError, true],
    ['53300', TransientError, true],
    ['40001', TransientError, true],
    ['40P01', TransientError, true],
    ['55006', TransientError, true],
    ['XX000', DataError, false],
  ])('SQLSTATE %s -> %p (retriable %s)', (code, type, retriable) => {
    const out = classifyPgError(pgError(code), ctx) as PgferryError;
    expect(out).toBeInstanceOf(type);
    expect(out.retriable).toBe(retriable);
    expect(out.code).toBe(code);
    expect(out.message.startsWith(`${ctx}: server said no`)).toBe(true);
    expect(out.cause).toBeDefined();
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'])(
    'socket %s is a retriable connection error',
    (code) => {
      const out = classifyPgError(Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code }), ctx);
      expect(out).toBeInstanceOf(ConnectionError);
      expect((out as PgferryError).retriable).toBe(true);
      expect(out.message).toContain('check that the server is running and reachable');
    },
  );

  it('says how to fix a wrong password', () => {
    const out = classifyPgError(pgError('28P01', 'password authentication failed for user "app"'), ctx);
    expect(out.message).toBe(
      `${ctx}: password authentication failed for user "app"; check the user name and password in the task spec`,
    );
  });

  it('keeps the server detail', () => {
    const out = classifyPgError(
      pgError('23505', 'duplicate key', { detail: 'Key (id)=(1) already exists.' }),
      ctx,
    );
    expect(out.message).toBe(`${ctx}: duplicate key (Key (id)=(1) already exists.)`);
  });

  it('treats a dropped connection as retriable', () => {
    const out = classifyPgError(new Error('Connection terminated unexpectedly'), ctx);
    expect(out).toBeInstanceOf(ConnectionError);
    expect((out as PgferryError).retriable).toBe(true);
  });

  it('treats a TLS refusal as fatal with the fix', () => {
    const out = classifyPgError(
      new Error('The server does not support SSL connections'),
      ctx,
    ) as PgferryError;
    expect(out.retriable).toBe(false);
    expect(out.message).toContain('set ssl.mode to prefer or disable');
  });

  it('passes programming errors and our own errors through unchanged', () => {
    const te = new TypeError('x');
    expect(classifyPgError(te, ctx)).toBe(te);
    const own = new ObjectError('y');
    expect(classifyPgError(own, ctx)).toBe(own);
  });
});
