/**
 * Secret redaction for anything that may reach a log, an error message or a status page.
 * Covers URL credentials (scheme://user:secret@host), libpq key=value strings
 * (password=secret, sslpassword='se cret'), and object keys that name secrets.
 */
export const REDACTED = '[redacted]';

const SECRET_KEY =
  /^(password|passwd|pass|pwd|secret|token|api[-_]?key|ssl[-_]?key|sslpassword|key|private[-_]?key|sasl[-_]?password|authorization)$/i;

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^:@/\s]*):([^@\s]*)@/gi;
const KEY_VALUE =
  /\b(password|sslpassword|passwd|secret|token)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,]+)/gi;
const URL_QUERY = /([?&](?:password|sslpassword|secret|token)=)[^&#\s]*/gi;

/**
 * Secret values known to this process (the passwords it resolved): every redacted string has
 * them replaced wherever they appear, whatever the text around them, the way CI logs mask
 * secrets. Values shorter than MIN_KNOWN_SECRET are not registered (they would mask ordinary
 * words); the patterns above still catch them in URLs and key=value text.
 */
const knownSecrets = new Set<string>();
const MIN_KNOWN_SECRET = 4;

/** Registers a secret value for redactString (idempotent). */
export function addKnownSecret(value: string | undefined | null): void {
  if (typeof value !== 'string' || value.length < MIN_KNOWN_SECRET) return;
  knownSecrets.add(value);
  // As it appears in a URL's userinfo.
  knownSecrets.add(encodeURIComponent(value));
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function redactString(text: string): string {
  for (const secret of knownSecrets) if (text.includes(secret)) text = text.split(secret).join(REDACTED);
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`)
    .replace(URL_QUERY, (_m, prefix: string) => `${prefix}${REDACTED}`)
    .replace(KEY_VALUE, (_m, key: string, eq: string) => `${key}${eq}${REDACTED}`);
}

/** A deep copy of `value` with secret-named keys replaced and every string scrubbed. */
export function redact<T>(value: T, seen = new WeakSet<object>()): T {
  if (typeof value === 'string') return redactString(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (Buffer.isBuffer(value)) return value;
  if (seen.has(value as object)) return '[circular]' as T;
  seen.add(value as object);
  if (Array.isArray(value)) return value.map((v) => redact(v, seen)) as T;
  if (value instanceof Error) {
    const copy: Record<string, unknown> = { type: value.name, message: redactString(value.message) };
    if (value.stack) copy.stack = redactString(value.stack);
    const extra = value as unknown as Record<string, unknown>;
    for (const k of Object.keys(extra)) copy[k] = isSecretKey(k) ? REDACTED : redact(extra[k], seen);
    if (value.cause !== undefined) copy.cause = redact(value.cause, seen);
    return copy as T;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = isSecretKey(k) && v !== undefined && v !== null && v !== '' ? REDACTED : redact(v, seen);
  }
  return out as T;
}
