import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { AuthenticationError, ConnectionError, PgferryError } from '@pgferry/core';

/** How to reach a registry beyond its URL: the CA its HTTPS certificate is checked against. */
export interface RegistryTlsOptions {
  /** PEM text of the CA certificates to trust instead of the system's. */
  ca?: string;
  /** The name the registry's certificate must carry, when it is not the URL's host. */
  servername?: string;
}

/**
 * A Confluent Schema Registry client (the embedded one or Confluent's): register per subject,
 * fetch by id, both cached. Registration is idempotent on the server: the same schema returns
 * the same id. User and password in the URL (`https://user:password@host/`) are sent as HTTP
 * basic authentication (Confluent's basic.auth.credentials.source=URL), never shown in errors.
 *
 * Why node:http and not fetch: Node's fetch takes no CA of its own without the undici package.
 */
export class RegistryClient {
  private byId = new Map<number, Promise<Record<string, unknown>>>();
  private registered = new Map<string, Promise<number>>();
  /** The URL without credentials: what errors name. */
  private readonly url: string;
  private readonly base: URL;
  private readonly authorization: string | undefined;
  private readonly agent: HttpsAgent | undefined;

  constructor(url: string, tls: RegistryTlsOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new PgferryError(
        `schema registry URL ${JSON.stringify(stripCredentials(url))} is not a URL; check schemaRegistryUrl`,
        { cause: err },
      );
    }
    if (parsed.username || parsed.password) {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      this.authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
      parsed.username = '';
      parsed.password = '';
    }
    this.base = parsed;
    this.url = parsed.toString().replace(/\/$/, '');
    if (parsed.protocol === 'https:' && (tls.ca || tls.servername))
      this.agent = new HttpsAgent({ keepAlive: true, ca: tls.ca, servername: tls.servername });
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: { status: number; text: string };
    try {
      res = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body));
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      // A certificate that does not verify stays so: no retry mends it.
      if (/CERT|^ERR_TLS_|^ERR_SSL_|UNABLE_TO_VERIFY/.test(code))
        throw new AuthenticationError(
          `schema registry ${this.url}: TLS: ${(err as Error).message}; check schemaRegistryUrl and kafka.schemaRegistry.ca (and serverName) against the registry's certificate`,
          { cause: err, code },
        );
      throw new ConnectionError(
        `schema registry ${this.url}: ${(err as Error).message}; check schemaRegistryUrl`,
        {
          cause: err,
        },
      );
    }
    const { status, text } = res;
    if (status === 401 || status === 403)
      throw new PgferryError(
        `schema registry ${method} ${path}: ${status} ${excerpt(text)}: ${this.authorization ? 'the registry refused these credentials' : 'the registry requires credentials'}; set kafka.schemaRegistry.username and password`,
        { code: String(status) },
      );
    if (status < 200 || status > 299) throw registryError(this.url, method, path, status, text);
    const json = parseJson(text);
    if (json === undefined) {
      throw new PgferryError(
        `schema registry ${method} ${path}: ${status} with a body that is not JSON (${excerpt(text)}): ${this.url} is not a Confluent-compatible registry API; check schemaRegistryUrl`,
      );
    }
    return json;
  }

  private send(
    method: string,
    path: string,
    body: string | undefined,
  ): Promise<{ status: number; text: string }> {
    const target = new URL(`${this.base.pathname.replace(/\/$/, '')}${path}`, this.base);
    const headers: Record<string, string> = {
      'content-type': 'application/vnd.schemaregistry.v1+json',
      accept: 'application/vnd.schemaregistry.v1+json',
    };
    if (this.authorization) headers.authorization = this.authorization;
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(target, { method, headers, agent: this.agent }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  register(subject: string, schema: Record<string, unknown>): Promise<number> {
    const text = JSON.stringify(schema);
    const k = `${subject}\u0000${text}`;
    let p = this.registered.get(k);
    if (!p) {
      p = this.call('POST', `/subjects/${encodeURIComponent(subject)}/versions`, {
        schema: text,
        schemaType: 'AVRO',
      }).then((r) => (r as { id: number }).id);
      p.catch(() => this.registered.delete(k));
      this.registered.set(k, p);
    }
    return p;
  }

  schema(id: number): Promise<Record<string, unknown>> {
    let p = this.byId.get(id);
    if (!p) {
      p = this.call('GET', `/schemas/ids/${id}`).then((r) => JSON.parse((r as { schema: string }).schema));
      p.catch(() => this.byId.delete(id));
      this.byId.set(id, p);
    }
    return p;
  }
}

/** A URL as errors may show it: without user and password. */
export function stripCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** `url` with `username` and `password` as its user info: how RegistryClient is given credentials. */
export function registryUrlWithCredentials(url: string, username: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(username);
  u.password = encodeURIComponent(password);
  return u.toString().replace(/\/$/, '');
}

/** The body parsed as JSON; undefined when it is not JSON (an HTML page, a proxy's text). */
function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return 'empty';
  return JSON.stringify(flat.length > 200 ? `${flat.slice(0, 200)}...` : flat);
}

/**
 * The error of a failed registry call. Confluent's API (and Apicurio's ccompat API) answer
 * `{error_code, message}`; the code is `error_code` (40401 subject not found, 409 incompatible,
 * 42201 invalid schema), else the HTTP status. A 404 without an error_code came from a server
 * with no such route: the URL is not the root of a Confluent-compatible API (Apicurio's other
 * paths answer RFC 7807 `{title, detail}`, an empty or HTML body elsewhere), and the message says so.
 */
export function registryError(
  url: string,
  method: string,
  path: string,
  status: number,
  text: string,
): PgferryError {
  const json = parseJson(text) as {
    error_code?: unknown;
    message?: unknown;
    detail?: unknown;
    title?: unknown;
  };
  const body = json && typeof json === 'object' ? json : {};
  const said = [body.message, body.detail, body.title].find((v) => typeof v === 'string' && v) as
    string | undefined;
  const errorCode =
    typeof body.error_code === 'number' || typeof body.error_code === 'string' ? body.error_code : null;
  let message = `schema registry ${method} ${path}: ${status} ${said ?? excerpt(text)}`;
  if (status === 404 && errorCode === null) {
    message += `; ${url} is not the root of a Confluent-compatible registry API: set schemaRegistryUrl to it (Apicurio Registry 3: http://HOST:PORT/apis/ccompat/v7)`;
  }
  return new PgferryError(message, { retriable: status >= 500, code: String(errorCode ?? status) });
}
