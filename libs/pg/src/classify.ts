import {
  AuthenticationError,
  ConnectionError,
  DataError,
  ObjectError,
  PermissionError,
  PgferryError,
  TransientError,
  isProgrammingError,
} from '@pgferry/core';

/**
 * Driver errors are classified once, here, at the boundary. `context` names what was being done
 * and on which server (e.g. 'connecting to source postgres@db1:5432/app'), so the resulting
 * message names the object; the hint says how to fix it.
 *
 * SQLSTATE classes (PostgreSQL appendix A):
 *   08 connection exception, 57P01-03 shutdown / cannot connect now, 53 insufficient resources,
 *   40001 serialization failure, 40P01 deadlock, 55006 object in use, 55P03 lock not available,
 *   58 system error                                                  -> retriable
 *   28 invalid authorization                                         -> AuthenticationError
 *   42501 insufficient privilege                                     -> PermissionError
 *   3D000 unknown database, 3F000 unknown schema, 42P01 unknown table,
 *   42704 unknown object, 42P07 duplicate table, 42710 duplicate object -> ObjectError
 *   other 42 (syntax, access rule), 22 data exception, 23 integrity   -> DataError (fatal)
 */
interface Rule {
  test: (code: string) => boolean;
  make: (message: string, cause: unknown, code: string) => PgferryError;
  hint?: (code: string) => string | undefined;
}

const NODE_RETRIABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
]);

const HINTS: Record<string, string> = {
  '28P01': 'check the user name and password in the task spec',
  '28000': 'allow this user and client address in pg_hba.conf, or use the right user',
  '3D000': 'create the database or correct the database name in the task spec',
  '42501': 'grant the missing privilege to this user (see docs/privileges.md) or use a user that has it',
  '53300': 'raise max_connections on the server or lower the number of pgferry workers',
  '55006': 'another process is using the object (for a replication slot: stop the other consumer)',
  '57P03': 'the server is starting up or shutting down; pgferry retries within the retry window',
};

const RULES: Rule[] = [
  {
    test: (c) => c.startsWith('08') || c === '57P01' || c === '57P02' || c === '57P03',
    make: (m, cause, code) => new ConnectionError(m, { cause, code }),
  },
  {
    test: (c) =>
      c.startsWith('53') ||
      c === '40001' ||
      c === '40P01' ||
      c === '55006' ||
      c === '55P03' ||
      c.startsWith('58') ||
      c === '57014',
    make: (m, cause, code) => new TransientError(m, { cause, code }),
  },
  { test: (c) => c.startsWith('28'), make: (m, cause, code) => new AuthenticationError(m, { cause, code }) },
  { test: (c) => c === '42501', make: (m, cause, code) => new PermissionError(m, { cause, code }) },
  {
    test: (c) =>
      ['3D000', '3F000', '42P01', '42704', '42P07', '42710', '42P06', '42883', '42703'].includes(c),
    make: (m, cause, code) => new ObjectError(m, { cause, code }),
  },
  {
    test: (c) => c.startsWith('42') || c.startsWith('22') || c.startsWith('23') || c.startsWith('0A'),
    make: (m, cause, code) => new DataError(m, { cause, code }),
  },
];

interface DriverErrorLike {
  message?: string;
  code?: string;
  detail?: string;
  hint?: string;
  errno?: number;
}

/**
 * Turns any error from pg / pg-copy-streams / the socket into a PgferryError, or returns it
 * unchanged when it already is one or is a programming error (those must surface as bugs).
 */
export function classifyPgError(err: unknown, context: string): Error {
  if (err instanceof PgferryError || isProgrammingError(err)) return err as Error;
  const e = (err ?? {}) as DriverErrorLike;
  const raw = e.message ?? String(err);
  const code = typeof e.code === 'string' ? e.code : '';
  if (NODE_RETRIABLE.has(code)) {
    return new ConnectionError(
      `${context}: ${raw} (${code}); check that the server is running and reachable`,
      {
        cause: err,
        code,
      },
    );
  }
  if (/^[0-9A-Z]{5}$/.test(code)) {
    const hint = HINTS[code] ?? e.hint;
    const detail = e.detail ? ` (${e.detail})` : '';
    const message = `${context}: ${raw}${detail}${hint ? `; ${hint}` : ''}`;
    for (const rule of RULES) if (rule.test(code)) return rule.make(message, err, code);
    return new DataError(message, { cause: err, code });
  }
  if (
    /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error|not queryable/i.test(
      raw,
    )
  ) {
    return new ConnectionError(`${context}: ${raw}; check that the server is running and reachable`, {
      cause: err,
    });
  }
  if (/does not support SSL/i.test(raw)) {
    return new ConnectionError(
      `${context}: the server does not accept TLS; set ssl.mode to prefer or disable, or enable ssl on the server`,
      {
        cause: err,
        retriable: false,
        code: 'TLS_UNSUPPORTED',
      },
    );
  }
  if (/self[- ]signed|certificate|unable to verify|altnames|SSL|TLS/i.test(raw)) {
    return new ConnectionError(
      `${context}: TLS handshake failed: ${raw}; check ssl.ca, ssl.mode and the server certificate`,
      {
        cause: err,
        retriable: false,
        code: 'TLS_FAILED',
      },
    );
  }
  return new PgferryError(`${context}: ${raw}`, { cause: err });
}
