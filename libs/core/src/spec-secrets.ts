import { addKnownSecret } from './redact';
import type { EndpointSpec, TaskSpec } from './spec';

/**
 * The secrets of a task spec: what of a spec may be stored (redactTaskSpec), and which values
 * every redacted line masks (registerSpecSecrets).
 */

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
 * (field or URL), no SASL or registry password, no inline client key (endpoints' or Kafka's). Nothing that reads a stored spec
 * connects with it: every process takes its passwords from its own input.
 */
export function redactTaskSpec<T extends Partial<TaskSpec>>(spec: T): T {
  const out: T = { ...spec };
  if (spec.source) out.source = redactEndpoint(spec.source);
  if (spec.destination) out.destination = redactEndpoint(spec.destination);
  if (spec.kafka) {
    const kafka = { ...spec.kafka };
    if (kafka.sasl) kafka.sasl = { ...kafka.sasl, password: '********' };
    if (kafka.tls?.key?.includes('-----BEGIN')) kafka.tls = { ...kafka.tls, key: '********' };
    if (kafka.schemaRegistry?.password !== undefined)
      kafka.schemaRegistry = { ...kafka.schemaRegistry, password: '********' };
    if (urlPassword(kafka.schemaRegistryUrl))
      kafka.schemaRegistryUrl = stripUrlPassword(kafka.schemaRegistryUrl!);
    out.kafka = kafka;
  }
  return out;
}

/** Registers the spec's passwords with the redaction of every log line and error (addKnownSecret). */
export function registerSpecSecrets(
  spec: Pick<TaskSpec, 'source' | 'destination'> & { kafka?: TaskSpec['kafka'] },
): void {
  for (const ep of [spec.source, spec.destination]) {
    addKnownSecret(ep.password);
    addKnownSecret(urlPassword(ep.url));
  }
  addKnownSecret(spec.kafka?.sasl?.password);
  addKnownSecret(spec.kafka?.schemaRegistry?.password);
  addKnownSecret(urlPassword(spec.kafka?.schemaRegistryUrl));
  if (spec.kafka?.tls?.key?.includes('-----BEGIN')) addKnownSecret(spec.kafka.tls.key);
}
