import pino from 'pino';
import { redact, redactString } from './redact';

export type Logger = pino.Logger;

export interface LoggerOptions {
  name?: string;
  level?: string;
  /** Where to write; defaults to stderr so stdout stays free for command output. */
  destination?: pino.DestinationStream;
}

/**
 * A structured JSON logger that cannot print a secret: every logged object goes through `redact`
 * (secret-named keys replaced, credentials in URLs and key=value strings scrubbed), and so does
 * every message string.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'pgferry',
      level: options.level ?? process.env.PGFERRY_LOG_LEVEL ?? 'info',
      formatters: {
        log: (obj) => redact(obj),
      },
      serializers: { err: (e: unknown) => redact(e) },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? redactString(a) : a)) as typeof args;
          return method.apply(this, scrubbed);
        },
      },
    },
    options.destination ?? pino.destination(2),
  );
}
