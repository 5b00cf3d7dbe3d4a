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
    const json = text ? JSON.parse(text) : null;
    if (!res.ok) {
      throw new PgferryError(`schema registry ${method} ${path}: ${res.status} ${json?.message ?? text}`, {
        retriable: res.status >= 500,
        code: String(json?.error_code ?? res.status),
      });
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
