/**
 * Typed errors. Every error pgferry raises on purpose is a PgferryError: it says whether retrying
 * can help (`retriable`), keeps the underlying error as `cause`, and its message names the object
 * and the fix. Programming errors (TypeError, RangeError, ...) are never wrapped and never retried.
 */
export interface PgferryErrorOptions {
  retriable?: boolean;
  cause?: unknown;
  /** A stable machine-readable code, e.g. the SQLSTATE or 'SPEC_INVALID'. */
  code?: string;
  /**
   * The server is gone or unreachable for now (a restart, a network loss), though the error is
   * not a ConnectionError: e.g. a Kafka broker answering NOT_LEADER_OR_FOLLOWER while it
   * restarts. Retried within retry.connectionMinutes like a ConnectionError (isConnectionLoss).
   */
  connectionLoss?: boolean;
}

export class PgferryError extends Error {
  readonly retriable: boolean;
  readonly code?: string;
  readonly connectionLoss: boolean;

  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
    this.code = options.code;
    this.connectionLoss = options.connectionLoss ?? false;
  }
}

/** The task spec or a command-line option is wrong. Never retriable. */
export class SpecError extends PgferryError {
  readonly issues: string[];
  constructor(issues: string[], options: PgferryErrorOptions = {}) {
    super(
      issues.length === 1
        ? `task spec: ${issues[0]}`
        : `task spec has ${issues.length} problems:\n  - ${issues.join('\n  - ')}`,
      { ...options, retriable: false, code: options.code ?? 'SPEC_INVALID' },
    );
    this.issues = issues;
  }
}

/** The server cannot be reached or dropped the connection. Retriable within the retry window. */
export class ConnectionError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { retriable: true, ...options, connectionLoss: true });
  }
}

/** Wrong user or password, or the server refuses the login. Fatal. */
export class AuthenticationError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { ...options, retriable: false });
  }
}

/** The user lacks a privilege. Fatal until someone grants it. */
export class PermissionError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { ...options, retriable: false });
  }
}

/** An object the task needs is missing, or one is in the way. Fatal. */
export class ObjectError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { ...options, retriable: false });
  }
}

/**
 * Bad data: a value or statement the server rejected (syntax, data exception, constraint), or
 * bytes from outside that do not parse (an Avro value, a Kafka record, a replication message).
 * Appliers with onError dead-letter park the record that raised it; a RangeError is never that.
 */
export class DataError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { retriable: false, ...options });
  }
}

/** A transient server-side condition: deadlock, serialization failure, shutdown, out of resources. */
export class TransientError extends PgferryError {
  constructor(message: string, options: PgferryErrorOptions = {}) {
    super(message, { ...options, retriable: true });
  }
}

/**
 * True for errors that indicate a bug in pgferry rather than a condition of the world: pgferry
 * throws RangeError only for its own broken invariants, never for bad input (DataError, SpecError).
 */
export function isProgrammingError(err: unknown): boolean {
  return (
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof ReferenceError ||
    err instanceof SyntaxError
  );
}

export function isRetriable(err: unknown): boolean {
  return err instanceof PgferryError && err.retriable;
}

/**
 * True when `err` or one of its causes says a server was lost or could not be reached (a
 * ConnectionError, or an error marked `connectionLoss` at its boundary): retried within
 * retry.connectionMinutes, where other retriable errors get retry.otherMinutes.
 */
export function isConnectionLoss(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++) {
    if (cur instanceof PgferryError && cur.connectionLoss) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** The message of an error and of each of its causes, outermost first. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 8; depth++) {
    const msg = cur instanceof Error ? cur.message : String(cur);
    if (!parts.includes(msg)) parts.push(msg);
    cur = cur instanceof Error ? (cur as { cause?: unknown }).cause : undefined;
  }
  return parts.join(': caused by: ');
}
