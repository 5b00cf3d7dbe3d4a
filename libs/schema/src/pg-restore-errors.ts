import {
  AuthenticationError,
  ConnectionError,
  DataError,
  ObjectError,
  PermissionError,
  PgferryError,
} from '@pgferry/core';

/**
 * What pg_dump / pg_restore said on stderr, reduced to what an error message needs. pg_restore
 * in verbose mode announces the entry it works on ("from TOC entry 219; 1259 16400 TABLE customers
 * postgres") right before an error, and a failed statement reads
 *
 *   pg_restore: error: could not execute query: ERROR:  relation "customers" already exists
 *   LINE 1: ...            (optional position lines, DETAIL:, HINT:)
 *   Command was: CREATE TABLE app.customers (
 *   ...
 *
 * Verbose progress lines are not kept, so memory stays bounded however large the schema is.
 */
export interface PgToolFailure {
  kind: 'query' | 'connection' | 'other';
  /** The server's (or the tool's) message, without the "ERROR:" prefix. */
  message: string;
  detail?: string;
  hint?: string;
  /** The statement that failed (query errors). */
  statement?: string;
  /** The TOC entry being restored when the error happened. */
  dumpId?: number;
  /** That entry as pg_restore announced it: "<catalog> <oid> <desc> <tag> <owner>". */
  entryText?: string;
}

const PREFIX = /^(pg_restore|pg_dump): /;
const FROM_ENTRY = /^(?:pg_restore|pg_dump): from TOC entry (\d+); (.*)$/;
const ERROR_LINE = /^(?:pg_restore|pg_dump): error: (.*)$/;
const QUERY_ERROR = /^(?:could not execute query|query failed): (?:ERROR|FATAL):\s+(.*)$/;
const CONNECTION_ERROR = /^(?:connection to server .*? failed|could not connect to .*?): (?:FATAL:\s+)?(.*)$/;
const MAX_STATEMENT = 64 * 1024;
const MAX_TAIL = 40;

export class PgToolStderr {
  private pending = '';
  private lastEntry: { dumpId: number; text: string } | undefined;
  private failure: PgToolFailure | undefined;
  /** The failure being read; continuation lines belong to it until a blank line or a new prefix. */
  private open: { failure: PgToolFailure; inStatement: boolean } | undefined;
  private readonly tailLines: string[] = [];

  push(chunk: string): void {
    this.pending += chunk;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      this.line(this.pending.slice(0, nl).replace(/\r$/, ''));
      this.pending = this.pending.slice(nl + 1);
    }
  }

  end(): void {
    if (this.pending) this.line(this.pending);
    this.pending = '';
    this.open = undefined;
  }

  /** The first error reported (later ones are usually consequences of it). */
  firstError(): PgToolFailure | undefined {
    return this.failure;
  }

  /** The last non-progress lines, for messages about failures that are not a statement. */
  tail(): string {
    return this.tailLines.join('\n').trim();
  }

  private line(line: string): void {
    const entry = FROM_ENTRY.exec(line);
    if (entry) {
      this.lastEntry = { dumpId: Number(entry[1]), text: entry[2] };
      this.open = undefined;
      return;
    }
    const error = ERROR_LINE.exec(line);
    if (error) {
      this.remember(line);
      this.startError(error[1]);
      return;
    }
    if (PREFIX.test(line)) {
      this.open = undefined;
      if (/: (warning|detail|hint): /.test(line)) this.remember(line);
      return;
    }
    this.remember(line);
    const open = this.open;
    if (!open) return;
    const f = open.failure;
    if (open.inStatement) {
      // pg_restore ends the statement with a blank line; a blank line inside a function body ends
      // it early, which only shortens what is kept.
      if (line === '') {
        this.open = undefined;
        return;
      }
      if ((f.statement?.length ?? 0) < MAX_STATEMENT) f.statement = `${f.statement ?? ''}${line}\n`;
      return;
    }
    if (line.startsWith('Command was: ')) {
      open.inStatement = true;
      f.statement = `${line.slice('Command was: '.length)}\n`;
    } else if (/^DETAIL:\s+/.test(line)) f.detail = line.replace(/^DETAIL:\s+/, '');
    else if (/^HINT:\s+/.test(line)) f.hint = line.replace(/^HINT:\s+/, '');
    else if (line === '') this.open = undefined;
  }

  private startError(text: string): void {
    if (this.failure) {
      this.open = undefined;
      return;
    }
    const query = QUERY_ERROR.exec(text);
    const connection = CONNECTION_ERROR.exec(text);
    const failure: PgToolFailure = query
      ? { kind: 'query', message: query[1] }
      : connection
        ? { kind: 'connection', message: connection[1] }
        : { kind: 'other', message: text };
    if (this.lastEntry && failure.kind === 'query') {
      failure.dumpId = this.lastEntry.dumpId;
      failure.entryText = this.lastEntry.text;
    }
    this.failure = failure;
    this.open = { failure, inStatement: false };
  }

  private remember(line: string): void {
    this.tailLines.push(line);
    if (this.tailLines.length > MAX_TAIL) this.tailLines.shift();
  }
}

/** Raw tool output kept as the `cause` of the typed error (already scrubbed of secrets). */
export class PgToolError extends Error {
  constructor(
    readonly tool: string,
    readonly failure: PgToolFailure | undefined,
    readonly stderrTail: string,
  ) {
    super(`${tool}: ${failure?.message ?? stderrTail}`);
    this.name = 'PgToolError';
  }
}

export interface FailureContext {
  /** What was being done, and where: "restoring pre-data into destination user@host:5432/db". */
  context: string;
  /** The failing object by dump id, e.g. 'TABLE "app"."customers"'; undefined when unknown. */
  describeEntry?: (dumpId: number) => string | undefined;
  /** The fix for a missing privilege; defaults to the destination's (restore) wording. */
  permissionHint?: string;
  tool: string;
  stderrTail: string;
}

/**
 * The typed error for a failed pg_dump / pg_restore run. The message names the object (from the
 * TOC entry) and the fix; the statement, detail and raw output stay on `cause` (a PgToolError).
 */
export function toolFailureError(failure: PgToolFailure | undefined, ctx: FailureContext): PgferryError {
  const cause = new PgToolError(ctx.tool, failure, ctx.stderrTail);
  if (!failure) {
    return new PgferryError(`${ctx.context}: ${ctx.tool} failed: ${ctx.stderrTail || 'no output'}`, {
      cause,
      code: 'PG_TOOL_FAILED',
    });
  }
  const msg = failure.message;
  if (failure.kind === 'connection') return connectionFailure(msg, ctx.context, cause);
  let where = '';
  if (failure.dumpId !== undefined) {
    const named = ctx.describeEntry?.(failure.dumpId) ?? failure.entryText;
    where = ` ${named} (TOC entry ${failure.dumpId}):`;
  }
  const detail = failure.detail ? ` (${failure.detail})` : '';
  const statement = failure.statement ? `; statement: ${firstLine(failure.statement)}` : '';
  const text = (fix: string) => `${ctx.context}:${where} ${msg}${detail}; ${fix}${statement}`;
  if (/already exists/.test(msg)) {
    return new ObjectError(
      text(
        'the object already exists on the destination: drop or rename it there, map the migrated object to another name (objects.include[].renameTo / renameTables), or exclude it from the task',
      ),
      { cause, code: 'OBJECT_EXISTS' },
    );
  }
  if (/^role ".*" does not exist/.test(msg)) {
    return new ObjectError(
      text('create the role on the destination, or restore without ownership (restoreOwnership off)'),
      { cause, code: '42704' },
    );
  }
  if (/permission denied|must be owner|must be superuser|must be member of role|only superuser/.test(msg)) {
    return new PermissionError(
      text(
        ctx.permissionHint ??
          'grant the destination user the privilege (CREATE on the database and schemas; superuser for C functions, event triggers and some extensions) or use a user that has it',
      ),
      { cause, code: '42501' },
    );
  }
  if (/could not (access|open|load) (file|library|extension control file)|is not available/.test(msg)) {
    return new ObjectError(
      text(
        'install the package that provides this library or extension on the destination server, or remove the object from the source or the selection',
      ),
      { cause, code: '58P01' },
    );
  }
  if (/does not exist/.test(msg)) {
    return new ObjectError(
      text(
        'it depends on an object that is not on the destination: include that object (objects.include) or create it on the destination first',
      ),
      { cause, code: '42704' },
    );
  }
  return new DataError(text('fix the object on the source or the destination and run the step again'), {
    cause,
    code: 'RESTORE_FAILED',
  });
}

function connectionFailure(msg: string, context: string, cause: PgToolError): PgferryError {
  if (/password authentication failed|no password supplied|authentication failed/.test(msg)) {
    return new AuthenticationError(`${context}: ${msg}; check the user name and password in the task spec`, {
      cause,
      code: '28P01',
    });
  }
  if (/no pg_hba\.conf entry/.test(msg)) {
    return new AuthenticationError(
      `${context}: ${msg}; allow this user and client address in pg_hba.conf, or use the right user`,
      { cause, code: '28000' },
    );
  }
  if (/database ".*" does not exist/.test(msg)) {
    return new ObjectError(
      `${context}: ${msg}; create the database or correct the database name in the task spec`,
      {
        cause,
        code: '3D000',
      },
    );
  }
  if (/SSL|certificate/i.test(msg)) {
    return new ConnectionError(
      `${context}: TLS failed: ${msg}; check ssl.mode, ssl.ca and the server certificate`,
      {
        cause,
        retriable: false,
        code: 'TLS_FAILED',
      },
    );
  }
  return new ConnectionError(`${context}: ${msg}; check that the server is running and reachable`, {
    cause,
  });
}

function firstLine(statement: string): string {
  const line = statement.trim().split('\n')[0];
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
