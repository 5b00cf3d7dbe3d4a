import { redactString } from '@pgferry/core';

/** The command-line flags that take a URL which may hold a password. */
const URL_FLAGS = ['--source', '--target', '--schema-registry'];
const URL_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^:@/\s]*:[^@\s]+@/i;

/**
 * The flags of `argv` (process.argv after node and the script) that carry a password in a URL
 * (`--source postgres://u:pw@h/d` or `--source=...`).
 */
export function passwordFlags(argv: string[]): string[] {
  const found: string[] = [];
  argv.forEach((arg, i) => {
    const eq = arg.indexOf('=');
    const [flag, value] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, argv[i + 1] ?? ''];
    if (URL_FLAGS.includes(flag) && URL_PASSWORD.test(value) && !found.includes(flag)) found.push(flag);
  });
  return found;
}

/** The one-line warning for passwords given on the command line, or null without any. */
export function commandLinePasswordWarning(argv: string[]): string | null {
  const flags = passwordFlags(argv);
  if (!flags.length) return null;
  return `pgferry: warning: the password in ${flags.join(' and ')} is visible to other users of this machine (ps, /proc/<pid>/cmdline) while pgferry starts; give it with --source-password-file / --target-password-file, in ~/.pgpass (or PGPASSFILE), PGPASSWORD or a spec file instead\n`;
}

/**
 * Hides this process's arguments from `ps`: on Linux, Node writes process.title over the
 * memory the kernel shows as /proc/<pid>/cmdline, so the command line is replaced by its
 * redacted form (cut to the original length). The window before this runs remains, hence the
 * warning.
 */
export function hideCommandLinePasswords(argv: string[]): void {
  if (!passwordFlags(argv).length) return;
  process.title = redactString(['pgferry', ...argv].join(' '));
}

/**
 * Every string or Buffer this process writes to stdout and stderr passes through redactString:
 * credentials in URLs, key=value passwords and every password the process resolved
 * (addKnownSecret) are masked in command output, commander's messages, errors and logs alike.
 * Idempotent.
 */
export function redactProcessOutput(): void {
  for (const stream of [process.stdout, process.stderr] as Array<NodeJS.WriteStream & { redacted?: true }>) {
    if (stream.redacted) continue;
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) =>
      write(
        typeof chunk === 'string'
          ? redactString(chunk)
          : Buffer.isBuffer(chunk)
            ? Buffer.from(redactString(chunk.toString('utf8')))
            : chunk,
        ...rest,
      )) as typeof stream.write;
    stream.redacted = true;
  }
}
