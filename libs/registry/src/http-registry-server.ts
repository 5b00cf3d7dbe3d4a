import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { type Logger, createLogger, describeError } from '@pgferry/core';
import { RegistryErrors, SchemaRegistryError } from './registry-errors';
import { type Route, type RouteResult, registryRoutes } from './registry-routes';
import type { SchemaLog } from './schema-log';
import { SchemaRegistryService } from './schema-registry-service';

export interface SchemaRegistryServerOptions {
  /** Where state lives; replayed before the server listens. */
  log: SchemaLog;
  /** 0 (the default) lets the system pick a free port; read it from the result. */
  port?: number;
  host?: string;
  /** Larger request bodies get 413. Default 8 MiB: Avro schemas of wide tables stay well under. */
  maxBodyBytes?: number;
  logger?: Pick<Logger, 'debug' | 'warn' | 'error'>;
  /**
   * HTTP basic authentication every request must carry (as Confluent's registry does with
   * authentication.method=BASIC); a request without it, or with other credentials, gets 401.
   */
  basicAuth?: { username: string; password: string } | null;
  /** HTTPS instead of HTTP: the server's certificate chain and key, PEM text. */
  tls?: { cert: string; key: string } | null;
}

export interface SchemaRegistryServer {
  /** Base URL for clients, e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  /** The same registry without HTTP, for in-process callers. */
  registry: SchemaRegistryService;
  /** Stops accepting requests, lets requests in flight finish, and waits for their log writes. */
  close(): Promise<void>;
}

/** Confluent's media type; clients send it and expect it back. */
export const SCHEMA_REGISTRY_CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
const ACCEPTED_REQUEST_TYPES = new Set([
  SCHEMA_REGISTRY_CONTENT_TYPE,
  'application/vnd.schemaregistry+json',
  'application/json',
  'application/octet-stream',
]);
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * Starts a Confluent-compatible schema registry over HTTP: replays `log`, then listens. Resolves
 * once the server accepts connections. Rejects with SchemaLogFormatError when the log holds a
 * malformed record, or with the listen error (EADDRINUSE, ...).
 */
export async function startSchemaRegistry(
  options: SchemaRegistryServerOptions,
): Promise<SchemaRegistryServer> {
  const logger = options.logger ?? createLogger({ name: 'schema-registry' });
  const registry = await SchemaRegistryService.open(options.log, (message) =>
    logger.warn({ component: 'schema-registry' }, message),
  );
  const routes = registryRoutes(registry);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const expected = options.basicAuth
    ? Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`, 'utf8')
    : null;
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    if (expected && !authorized(req.headers.authorization, expected)) {
      req.resume();
      res.setHeader('WWW-Authenticate', 'Basic realm="pgferry schema registry", charset="UTF-8"');
      send(res, 401, {
        json: {
          error_code: 401,
          message:
            'Unauthorized: this schema registry requires HTTP basic authentication with the credentials of its pgferry run',
        },
      });
      return;
    }
    void handle(req, res, routes, maxBodyBytes, logger);
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest)
    : createServer(onRequest);
  const host = options.host ?? '127.0.0.1';
  await listen(server, options.port ?? 0, host);
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.debug({ url }, 'schema registry listening');
  return {
    url,
    port,
    registry,
    close: async () => {
      await new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      });
      await registry.drain();
    },
  };
}

/** Whether an Authorization header carries exactly the expected `user:password` (constant time). */
function authorized(header: string | undefined, expected: Buffer): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1], 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  routes: Route[],
  maxBodyBytes: number,
  logger: Pick<Logger, 'error'>,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://registry');
    const segments = splitPath(url.pathname);
    const onPath = routes
      .map((route) => ({ route, params: match(route.path, segments) }))
      .filter((m) => m.params !== undefined);
    if (onPath.length === 0) throw RegistryErrors.http(404, 'HTTP 404 Not Found');
    const found = onPath.find((m) => m.route.method === req.method);
    if (!found) throw RegistryErrors.http(405, 'HTTP 405 Method Not Allowed');
    let body: Promise<Record<string, unknown>> | undefined;
    const result = await found.route.handle({
      params: found.params as Record<string, string>,
      query: url.searchParams,
      body: () => (body ??= readJsonBody(req, maxBodyBytes)),
    });
    send(res, 200, result);
  } catch (err) {
    if (err instanceof SchemaRegistryError) {
      if (err.status === 413) res.setHeader('Connection', 'close');
      if (err.status >= 500) logger.error({ err: describeError(err) }, 'schema registry request failed');
      send(res, err.status, { json: err.toJSON() });
      return;
    }
    logger.error({ err: describeError(err), url: req.url }, 'schema registry internal error');
    send(res, 500, { json: { error_code: 500, message: `Internal server error: ${describeError(err)}` } });
  }
}

function send(res: ServerResponse, status: number, result: RouteResult): void {
  if (res.headersSent) return;
  const text = 'raw' in result ? result.raw : JSON.stringify(result.json);
  res.writeHead(status, {
    'Content-Type': SCHEMA_REGISTRY_CONTENT_TYPE,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Splits a path into decoded segments; a trailing slash is ignored. `%2F` stays inside a subject. */
function splitPath(pathname: string): string[] {
  const parts = pathname.split('/').filter((p, i, all) => p !== '' || (i !== 0 && i !== all.length - 1));
  try {
    return parts.map((p) => decodeURIComponent(p));
  } catch {
    throw RegistryErrors.http(400, `Malformed percent-encoding in path ${pathname}`);
  }
}

function match(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i].startsWith(':')) {
      if (segments[i] === '') return undefined;
      params[pattern[i].slice(1)] = segments[i];
    } else if (pattern[i] !== segments[i]) {
      return undefined;
    }
  }
  return params;
}

/**
 * Reads the request body as a JSON object. 415 for a media type other than Confluent's, JSON or
 * octet-stream (none given is accepted); 413 past `maxBodyBytes`; 400 when it is not JSON; 422
 * when it is JSON but not an object.
 */
async function readJsonBody(req: IncomingMessage, maxBodyBytes: number): Promise<Record<string, unknown>> {
  const mediaType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (mediaType !== '' && !ACCEPTED_REQUEST_TYPES.has(mediaType)) {
    throw RegistryErrors.http(415, `HTTP 415 Unsupported Media Type: ${mediaType}`);
  }
  const tooLarge = () => RegistryErrors.http(413, `Request body is larger than ${maxBodyBytes} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > maxBodyBytes) {
    req.resume();
    throw tooLarge();
  }
  const text = await readText(req, maxBodyBytes, tooLarge);
  if (text.trim() === '') throw RegistryErrors.http(422, 'Request body is empty; a JSON object is required');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw RegistryErrors.http(
      400,
      `Request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw RegistryErrors.http(422, 'Request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/**
 * Collects the body up to `maxBodyBytes`. Past the limit it rejects and discards the rest rather
 * than destroying the request, so the 413 answer still reaches the client.
 */
function readText(req: IncomingMessage, maxBodyBytes: number, tooLarge: () => Error): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBodyBytes) return void chunks.push(chunk);
      req.off('data', onData);
      req.off('end', onEnd);
      req.resume();
      reject(tooLarge());
    };
    const onEnd = () => resolve(Buffer.concat(chunks).toString('utf8'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.once('error', reject);
  });
}
