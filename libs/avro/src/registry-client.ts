import { ConnectionError, PgferryError } from '@pgferry/core';

/**
 * A Confluent Schema Registry client (the embedded one or Confluent's): register per subject,
 * fetch by id, both cached. Registration is idempotent on the server: the same schema returns
 * the same id.
 */
export class RegistryClient {
  private byId = new Map<number, Promise<Record<string, unknown>>>();
  private registered = new Map<string, Promise<number>>();

  constructor(private readonly url: string) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(`${this.url.replace(/\/$/, '')}${path}`, {
        method,
        headers: {
          'content-type': 'application/vnd.schemaregistry.v1+json',
          accept: 'application/vnd.schemaregistry.v1+json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ConnectionError(
        `schema registry ${this.url}: ${(err as Error).message}; check schemaRegistryUrl`,
        { cause: err },
      );
    }
    const text = await res.text();
    if (!res.ok) throw registryError(this.url, method, path, res.status, text);
    const json = parseJson(text);
    if (json === undefined) {
      throw new PgferryError(
        `schema registry ${method} ${path}: ${res.status} with a body that is not JSON (${excerpt(text)}): ${this.url} is not a Confluent-compatible registry API; check schemaRegistryUrl`,
      );
    }
    return json;
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
