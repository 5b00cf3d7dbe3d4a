import { chmodSync, existsSync } from 'node:fs';
import { PgferryError, PRIVATE_FILE_MODE, redactString } from '@pgferry/core';
import { describeEndpoint, type Endpoint } from '@pgferry/pg';
import { DBNAME_FROM_ENV, libpqEnv } from './pg-env';
import { toolFailureError, type PgToolFailure } from './pg-restore-errors';
import { runPgTool, type PgTools, type ToolRunResult } from './pg-tools';
import { parseTocListing, type TocEntry, type TocSplitHints } from './toc';

export interface PgDumpDriverOptions {
  tools: PgTools;
  /** Private directory (0700) for PEM files libpq needs; see libpqEnv. */
  secretsDir: string;
  signal?: AbortSignal;
  applicationName?: string;
  /** Starts a tool; defaults to runPgTool (tests pass a fake). */
  run?: typeof runPgTool;
}

export interface RestoreOptions {
  /** --single-transaction: all or nothing (and stops at the first error). Excludes `jobs`. */
  singleTransaction?: boolean;
  /** --jobs: parallel restore (custom-format archives only); stops at the first error. */
  jobs?: number;
  /** Keep owners (ALTER ... OWNER TO) and privileges (GRANT): the roles must exist on the target. */
  restoreOwnership?: boolean;
  /** Keep tablespace assignments: the tablespaces must exist on the target. */
  tablespaces?: boolean;
  /** Names a failing entry by dump id for the error message. */
  describeEntry?: (dumpId: number) => string | undefined;
  /** Leads error messages: "restoring post-data into destination ...". */
  context: string;
  /** Session settings of every connection pg_restore opens (PGOPTIONS, "-c name=value"). */
  pgOptions?: string;
}

/**
 * Runs pg_dump and pg_restore. Connection details and the password go through the child's
 * environment only (libpqEnv); nothing here logs or prints. Failures become typed errors whose
 * message names the failing TOC entry and the fix (pg-restore-errors.ts); secrets are scrubbed
 * from everything kept of the tools' output.
 */
export class PgDumpDriver {
  constructor(private readonly options: PgDumpDriverOptions) {}

  get tools(): PgTools {
    return this.options.tools;
  }

  private get runner(): typeof runPgTool {
    return this.options.run ?? runPgTool;
  }

  /**
   * `pg_dump --schema-only --format=custom` of the objects `selectionArgs` select into `file`
   * (overwritten). Publications and subscriptions are replication settings of the source, not
   * schema, and are left out. Reads the source only.
   */
  async dumpSchema(ep: Endpoint, role: string, selectionArgs: string[], file: string): Promise<void> {
    const args = [
      '--schema-only',
      '--format=custom',
      '--encoding=UTF8',
      '--no-publications',
      '--no-subscriptions',
      `--file=${file}`,
      ...selectionArgs,
    ];
    const context = `dumping the schema of ${role} ${describeEndpoint(ep)}`;
    const result = await this.run(this.tools.pgDump, args, ep, role, false);
    this.check(result, 'pg_dump', context, {
      ep,
      permissionHint: `grant user ${ep.user} SELECT on the selected tables and USAGE on their schemas on the ${role} server, or use a user that has them`,
    });
    // pg_dump creates it by its umask (0644); the dump is the source's schema: this user's only.
    if (existsSync(file)) chmodSync(file, PRIVATE_FILE_MODE);
  }

  /**
   * The archive's table of contents with dependencies (`pg_restore -l -v`), and the dump ids
   * pg_dump assigned to each section (`pg_restore -l --section=...`; verbose listings ignore
   * --section, hence the separate runs). No connection.
   */
  async listToc(
    file: string,
    hints: TocSplitHints,
  ): Promise<{ entries: TocEntry[]; preData: Set<number>; postData: Set<number> }> {
    const list = async (extra: string[]) => {
      const args = ['--list', ...extra, file];
      const env = { PATH: process.env.PATH ?? '', LC_ALL: 'C.UTF-8' };
      const result = await this.runner(this.tools.pgRestore, args, {
        env,
        signal: this.options.signal,
        captureStdout: true,
      });
      this.check(result, 'pg_restore --list', `reading the table of contents of ${file}`);
      return parseTocListing(result.stdout, hints);
    };
    const ids = (entries: TocEntry[]) => new Set(entries.map((e) => e.dumpId));
    const [entries, preData, postData] = await Promise.all([
      list(['--verbose']),
      list(['--section=pre-data']),
      list(['--section=post-data']),
    ]);
    return { entries, preData: ids(preData), postData: ids(postData) };
  }

  /**
   * Restores the entries named in `listFile` (a `pg_restore -L` list, see formatTocList; its
   * order is the restore order) from the archive into `ep`, with --exit-on-error semantics: the
   * first failure stops the run and is thrown. With singleTransaction nothing is left behind on
   * failure; with jobs, objects restored before the failure stay.
   */
  async restore(
    ep: Endpoint,
    role: string,
    file: string,
    listFile: string,
    options: RestoreOptions,
  ): Promise<void> {
    const args = [`--dbname=${DBNAME_FROM_ENV}`, `--use-list=${listFile}`, '--exit-on-error', '--verbose'];
    if (options.singleTransaction) args.push('--single-transaction');
    else if (options.jobs && options.jobs > 1) args.push(`--jobs=${options.jobs}`);
    if (!options.restoreOwnership) args.push('--no-owner', '--no-privileges');
    if (!options.tablespaces) args.push('--no-tablespaces');
    args.push(file);
    const result = await this.run(this.tools.pgRestore, args, ep, role, false, options.pgOptions);
    this.check(result, 'pg_restore', options.context, { ep, describeEntry: options.describeEntry });
  }

  private async run(
    file: string,
    args: string[],
    ep: Endpoint,
    role: string,
    captureStdout: boolean,
    pgOptions?: string,
  ): Promise<ToolRunResult> {
    const env = await libpqEnv(ep, {
      secretsDir: this.options.secretsDir,
      role,
      applicationName: this.options.applicationName,
      pgOptions,
    });
    return this.runner(file, args, { env, signal: this.options.signal, captureStdout });
  }

  private check(
    result: ToolRunResult,
    tool: string,
    context: string,
    extra: {
      ep?: Endpoint;
      describeEntry?: (dumpId: number) => string | undefined;
      permissionHint?: string;
    } = {},
  ): void {
    const { ep, describeEntry, permissionHint } = extra;
    if (this.options.signal?.aborted) {
      throw new PgferryError(`${context}: cancelled`, {
        code: 'CANCELLED',
        cause: this.options.signal.reason,
      });
    }
    if (result.exitCode === 0) return;
    const scrub = (text: string) => scrubSecret(text, ep?.password);
    const failure = result.stderr.firstError();
    const scrubbed: PgToolFailure | undefined = failure && {
      ...failure,
      message: scrub(failure.message),
      ...(failure.detail !== undefined ? { detail: scrub(failure.detail) } : {}),
      ...(failure.statement !== undefined ? { statement: scrub(failure.statement) } : {}),
    };
    const tail = scrub(result.stderr.tail()) || (result.signal ? `killed by ${result.signal}` : '');
    throw toolFailureError(scrubbed, { context, describeEntry, permissionHint, tool, stderrTail: tail });
  }
}

/**
 * Redacts URL / key=value credentials, SQL option values named like secrets (`password 'x'`, as
 * in CREATE USER MAPPING or CREATE SERVER statements a dump may hold) and, when it is long
 * enough to be unambiguous, the endpoint's password itself.
 */
export function scrubSecret(text: string, password: string | undefined): string {
  const redacted = redactString(text).replace(
    /\b(password|passwd|secret|token)(\s+)'(?:[^']|'')*'/gi,
    (_m, key: string, space: string) => `${key}${space}'[redacted]'`,
  );
  return password && password.length >= 4 ? redacted.split(password).join('[redacted]') : redacted;
}
