import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addKnownSecret,
  registerSpecSecrets,
  SpecError,
  urlPassword,
  type EndpointSpec,
  type TaskSpec,
} from '@pgferry/core';
import { resolveEndpoint } from './endpoint';

/** What a process was given besides its spec: the libpq variables of its environment. */
export interface PasswordEnv {
  PGPASSWORD?: string;
  PGPASSFILE?: string;
  HOME?: string;
}

/** Where an endpoint's password came from, for messages (never the password itself). */
export type PasswordSource = 'spec' | 'passwordFile' | 'PGPASSWORD' | 'pgpass' | 'none';

/**
 * The endpoint with its password resolved, in libpq's order: the password in the spec (field
 * or url), else the first line of passwordFile, else PGPASSWORD, else the matching line of
 * PGPASSFILE (~/.pgpass); none of them: no password (trust, peer or certificate login).
 * The result has `password` set and no passwordFile, so a child handed it reads no file; the
 * password is registered with the redaction of every log line. Errors name the endpoint and
 * the file.
 */
export async function resolveEndpointPassword(
  spec: EndpointSpec,
  role: 'source' | 'destination',
  env: PasswordEnv,
  onWarning: (line: string) => void = () => undefined,
): Promise<{ endpoint: EndpointSpec; from: PasswordSource }> {
  const { passwordFile, ...rest } = spec;
  const given = spec.password ?? urlPassword(spec.url);
  if (given !== undefined) {
    if (passwordFile !== undefined)
      throw new SpecError([
        `${role}: the url holds a password and passwordFile is set too: remove one of them`,
      ]);
    addKnownSecret(given);
    return { endpoint: rest, from: 'spec' };
  }
  let password: string | undefined;
  let from: PasswordSource = 'none';
  if (passwordFile !== undefined) {
    password = await readPasswordFile(passwordFile, role);
    from = 'passwordFile';
  } else if (env.PGPASSWORD) {
    password = env.PGPASSWORD;
    from = 'PGPASSWORD';
  } else {
    password = await passFilePassword(resolveEndpoint(rest, role), env, onWarning);
    if (password !== undefined) from = 'pgpass';
  }
  addKnownSecret(password);
  return { endpoint: password === undefined ? rest : { ...rest, password }, from };
}

/** The spec with both endpoints' passwords resolved (resolveEndpointPassword). */
export async function resolveSpecPasswords(
  spec: TaskSpec,
  env: PasswordEnv,
  onWarning?: (line: string) => void,
): Promise<TaskSpec> {
  const [source, destination] = await Promise.all([
    resolveEndpointPassword(spec.source, 'source', env, onWarning),
    resolveEndpointPassword(spec.destination, 'destination', env, onWarning),
  ]);
  const resolved = { ...spec, source: source.endpoint, destination: destination.endpoint };
  // Kafka's and the registry's secrets too (SASL, basic auth, an inline key).
  registerSpecSecrets(resolved);
  return resolved;
}

async function readPasswordFile(file: string, role: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SpecError([
      `${role}.passwordFile: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a file whose first line is the password`,
    ]);
  }
  const password = text.split(/\r?\n/)[0];
  if (!password)
    throw new SpecError([`${role}.passwordFile: ${file} is empty; its first line must be the password`]);
  return password;
}

/**
 * The password of the first line of PGPASSFILE (default ~/.pgpass) that matches the endpoint,
 * in libpq's format: host:port:database:user:password, `*` matching anything in the first
 * four fields, `\:` and `\\` escaping, lines starting with # ignored. Like libpq, a file
 * that is not a plain file or that its group or others can access is ignored, with a warning.
 * Not the pgpass package (pg's dependency): it returns the last matching line, not the
 * first, when the file arrives in one read, so a trailing `*:*:*:*:` line would win over
 * the lines above it.
 */
async function passFilePassword(
  ep: { host: string; port: number; database: string; user: string },
  env: PasswordEnv,
  onWarning: (line: string) => void,
): Promise<string | undefined> {
  const file = env.PGPASSFILE || (env.HOME ? join(env.HOME, '.pgpass') : undefined);
  if (!file) return undefined;
  let text: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) {
      onWarning(`password file "${file}" is not a plain file: not used`);
      return undefined;
    }
    if (process.platform !== 'win32' && st.mode & 0o077) {
      onWarning(
        `password file "${file}" has group or world access: not used; permissions should be u=rw (0600) or less (chmod 600 ${file})`,
      );
      return undefined;
    }
    text = await readFile(file, 'utf8');
  } catch {
    return undefined; // no password file, as for libpq
  }
  const want = [ep.host, String(ep.port), ep.database, ep.user];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    const fields = passFileFields(line);
    if (fields && want.every((w, i) => fields[i] === '*' || fields[i] === w)) return fields[4];
  }
  return undefined;
}

/** One line's five fields, unescaped; null for a line with fewer. */
export function passFileFields(line: string): string[] | null {
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) cur += line[++i];
    else if (c === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else cur += c;
  }
  fields.push(cur);
  return fields.length === 5 ? fields : null;
}
