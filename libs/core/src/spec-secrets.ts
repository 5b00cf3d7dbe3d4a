import { SpecError } from './errors';
import { addKnownSecret } from './redact';
import type { EndpointSpec, TaskSpec } from './spec';

/**
 * The secrets of a task spec: where they may come from (`${NAME}` references to the
 * environment in a spec file), what of a spec may be stored (redactTaskSpec), and which values
 * every redacted line masks (registerSpecSecrets).
 */

const REFERENCE = /\$(\$|\{([^}]*)\})/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A copy of a parsed spec document with every `${NAME}` in a string value replaced by the
 * environment variable NAME (`$$` writes a single `$`). Only string values are expanded, never
 * keys, so a variable cannot add fields. Throws a SpecError naming each unset variable and
 * where it is referenced.
 */
export function expandEnvReferences(doc: unknown, env: Record<string, string | undefined>): unknown {
  const problems: string[] = [];
  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string')
      return value.replace(REFERENCE, (whole, dollar: string, name: string | undefined) => {
        if (dollar === '$') return '$';
        if (!VARIABLE_NAME.test(name ?? '')) {
          problems.push(`${path}: "${whole}" is not a variable reference (write \${NAME}, or $$ for a $)`);
          return whole;
        }
        const v = env[name!];
        if (v === undefined) {
          problems.push(
            `${path}: environment variable ${name} is not set (referenced as \${${name}}); set it, or write $$ for a literal $`,
          );
          return whole;
        }
        return v;
      });
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`));
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, walk(v, path ? `${path}.${k}` : k)]),
      );
    return value;
  };
  const out = walk(doc, '');
  if (problems.length) throw new SpecError(problems);
  return out;
}

/** The password of a postgres URL, decoded, or undefined. */
export function urlPassword(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const parsed = new URL(url);
    return parsed.password ? decodeURIComponent(parsed.password) : undefined;
  } catch {
    return undefined;
  }
}

/** The URL without a password (in its userinfo or a password= option); other text as given. */
export function stripUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    parsed.searchParams.delete('password');
    return parsed.toString();
  } catch {
    // Not a URL (the spec check refuses it): keep only what has no credentials.
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

function redactEndpoint(ep: EndpointSpec): EndpointSpec {
  const { password: _password, ...rest } = ep;
  const out: EndpointSpec = { ...rest };
  if (ep.url !== undefined) out.url = stripUrlPassword(ep.url);
  // A client key given as PEM text is a secret; a path to one is not.
  if (ep.ssl?.key?.includes('-----BEGIN')) out.ssl = { ...ep.ssl, key: '********' };
  return out;
}

/**
 * The spec as it may be stored and shown (pgferry.tasks, the task API): no endpoint password
 * (field or URL), no SASL password, no inline client key. Nothing that reads a stored spec
 * connects with it: every process takes its passwords from its own input.
 */
export function redactTaskSpec<T extends Partial<TaskSpec>>(spec: T): T {
  const out: T = { ...spec };
  if (spec.source) out.source = redactEndpoint(spec.source);
  if (spec.destination) out.destination = redactEndpoint(spec.destination);
  if (spec.kafka?.sasl) out.kafka = { ...spec.kafka, sasl: { ...spec.kafka.sasl, password: '********' } };
  return out;
}

/** Registers the spec's passwords with the redaction of every log line and error (addKnownSecret). */
export function registerSpecSecrets(spec: Pick<TaskSpec, 'source' | 'destination'> & { kafka?: TaskSpec['kafka'] }): void {
  for (const ep of [spec.source, spec.destination]) {
    addKnownSecret(ep.password);
    addKnownSecret(urlPassword(ep.url));
  }
  addKnownSecret(spec.kafka?.sasl?.password);
}
