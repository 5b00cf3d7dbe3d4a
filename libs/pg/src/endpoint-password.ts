import { readFile } from 'node:fs/promises';
import {
  addKnownSecret,
  SpecError,
  urlPassword,
  type EndpointSpec,
  type TaskSpec,
} from '@pgferry/core';
import { resolveEndpoint } from './endpoint';

// pgpass (a dependency of pg, which calls it only when given no password and warns that it
// will stop in pg 9) reads PGPASSFILE or ~/.pgpass in libpq's format, ignoring a file with
// group or world access as libpq does. It reads PGPASSFILE and HOME from the process's
// environment and ships no types: this is its whole API.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pgpass = require('pgpass') as (
  conn: { host: string; port: number; database: string; user: string },
  cb: (password: string | undefined) => void,
) => void;

/** What a process was given besides its spec: the libpq variables of its environment. */
export interface PasswordEnv {
  PGPASSWORD?: string;
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
    const ep = resolveEndpoint(rest, role);
    password = await new Promise<string | undefined>((resolve) =>
      pgpass({ host: ep.host, port: ep.port, database: ep.database, user: ep.user }, resolve),
    );
    if (password !== undefined) from = 'pgpass';
  }
  addKnownSecret(password);
  return { endpoint: password === undefined ? rest : { ...rest, password }, from };
}

/** The spec with both endpoints' passwords resolved (resolveEndpointPassword). */
export async function resolveSpecPasswords(spec: TaskSpec, env: PasswordEnv): Promise<TaskSpec> {
  const [source, destination] = await Promise.all([
    resolveEndpointPassword(spec.source, 'source', env),
    resolveEndpointPassword(spec.destination, 'destination', env),
  ]);
  addKnownSecret(spec.kafka.sasl?.password);
  return { ...spec, source: source.endpoint, destination: destination.endpoint };
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
