import { RegistryErrors } from './registry-errors';
import { parseVersionSpec, type SchemaRegistryService } from './schema-registry-service';

/** What a route handler sees of the request. */
export interface RouteRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body, read and parsed on first call; failures are SchemaRegistryError. */
  body(): Promise<Record<string, unknown>>;
}

/** A JSON value to serialize, or a raw schema text served as the body as is. */
export type RouteResult = { json: unknown } | { raw: string };

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path segments; `:name` matches one decoded segment. */
  path: string[];
  handle(req: RouteRequest): RouteResult | Promise<RouteResult>;
}

function flag(query: URLSearchParams, name: string): boolean {
  return (query.get(name) ?? '').toLowerCase() === 'true';
}

/** Ids are 32-bit integers; like Jersey, a segment that is not one matches no resource (404). */
function schemaId(text: string): number {
  const id = /^[0-9]{1,10}$/.test(text) ? Number(text) : NaN;
  if (!(id <= 2 ** 31 - 1)) throw RegistryErrors.http(404, 'HTTP 404 Not Found');
  return id;
}

const json = (value: unknown): RouteResult => ({ json: value });

/**
 * The request body of a schema operation. Schema references are refused outright: resolving a
 * schema without the types it references would fail later with a misleading "undefined type".
 */
async function schemaBody(req: RouteRequest): Promise<Record<string, unknown>> {
  const body = await req.body();
  if (Array.isArray(body.references) && body.references.length > 0) {
    throw RegistryErrors.invalidSchema('schema references are not supported by this registry');
  }
  return body;
}

/**
 * Confluent Schema Registry's REST API (the subset for Avro without references), route by route,
 * with its response shapes. Query flags: `deleted=true` includes soft-deleted versions in reads,
 * `permanent=true` hard-deletes, `defaultToGlobal=true` falls back to the global level,
 * `verbose=true` adds the reasons to a compatibility answer.
 */
export function registryRoutes(registry: SchemaRegistryService): Route[] {
  const byId = (req: RouteRequest) => registry.getSchemaById(schemaId(req.params.id));
  return [
    { method: 'GET', path: [], handle: () => json({}) },
    { method: 'GET', path: ['schemas', 'types'], handle: () => json(['AVRO']) },
    {
      method: 'GET',
      path: ['schemas', 'ids', ':id'],
      handle: (req) => {
        const stored = byId(req);
        const out: Record<string, unknown> = {};
        if (stored.schemaType !== 'AVRO') out.schemaType = stored.schemaType;
        out.schema = stored.schema;
        if (flag(req.query, 'fetchMaxId')) out.maxId = registry.highestId();
        return json(out);
      },
    },
    {
      method: 'GET',
      path: ['schemas', 'ids', ':id', 'schema'],
      handle: (req) => ({ raw: byId(req).schema }),
    },
    {
      method: 'GET',
      path: ['schemas', 'ids', ':id', 'versions'],
      handle: (req) => json(registry.getVersionsOfId(schemaId(req.params.id), flag(req.query, 'deleted'))),
    },
    {
      method: 'GET',
      path: ['schemas', 'ids', ':id', 'subjects'],
      handle: (req) => json(registry.getSubjectsOfId(schemaId(req.params.id), flag(req.query, 'deleted'))),
    },
    {
      method: 'GET',
      path: ['subjects'],
      handle: (req) => json(registry.listSubjects(flag(req.query, 'deleted'))),
    },
    {
      method: 'POST',
      path: ['subjects', ':subject'],
      handle: async (req) => {
        const body = await schemaBody(req);
        const found = registry.lookup(
          req.params.subject,
          body.schema,
          body.schemaType,
          flag(req.query, 'deleted'),
        );
        return json(found);
      },
    },
    {
      method: 'DELETE',
      path: ['subjects', ':subject'],
      handle: async (req) =>
        json(await registry.deleteSubject(req.params.subject, flag(req.query, 'permanent'))),
    },
    {
      method: 'GET',
      path: ['subjects', ':subject', 'versions'],
      handle: (req) => json(registry.listVersions(req.params.subject, flag(req.query, 'deleted'))),
    },
    {
      method: 'POST',
      path: ['subjects', ':subject', 'versions'],
      handle: async (req) => {
        const body = await schemaBody(req);
        return json(await registry.register(req.params.subject, body.schema, body.schemaType));
      },
    },
    {
      method: 'GET',
      path: ['subjects', ':subject', 'versions', ':version'],
      handle: (req) => json(versionOf(registry, req)),
    },
    {
      method: 'GET',
      path: ['subjects', ':subject', 'versions', ':version', 'schema'],
      handle: (req) => ({ raw: versionOf(registry, req).schema }),
    },
    {
      // Schema references are not supported, so nothing ever references a version.
      method: 'GET',
      path: ['subjects', ':subject', 'versions', ':version', 'referencedby'],
      handle: (req) => {
        versionOf(registry, req);
        return json([]);
      },
    },
    {
      method: 'DELETE',
      path: ['subjects', ':subject', 'versions', ':version'],
      handle: async (req) => {
        const spec = parseVersionSpec(req.params.version);
        return json(await registry.deleteVersion(req.params.subject, spec, flag(req.query, 'permanent')));
      },
    },
    {
      method: 'GET',
      path: ['config'],
      handle: () => json({ compatibilityLevel: registry.getGlobalLevel() }),
    },
    {
      method: 'PUT',
      path: ['config'],
      handle: async (req) =>
        json({ compatibility: await registry.setLevel(null, levelOf(await req.body())) }),
    },
    {
      method: 'GET',
      path: ['config', ':subject'],
      handle: (req) =>
        json({
          compatibilityLevel: registry.getSubjectLevel(
            req.params.subject,
            flag(req.query, 'defaultToGlobal'),
          ),
        }),
    },
    {
      method: 'PUT',
      path: ['config', ':subject'],
      handle: async (req) =>
        json({ compatibility: await registry.setLevel(req.params.subject, levelOf(await req.body())) }),
    },
    {
      method: 'DELETE',
      path: ['config', ':subject'],
      handle: async (req) =>
        json({ compatibilityLevel: await registry.deleteSubjectLevel(req.params.subject) }),
    },
    {
      method: 'POST',
      path: ['compatibility', 'subjects', ':subject', 'versions'],
      handle: (req) => compatibility(registry, req, undefined),
    },
    {
      method: 'POST',
      path: ['compatibility', 'subjects', ':subject', 'versions', ':version'],
      handle: (req) => compatibility(registry, req, req.params.version),
    },
    { method: 'GET', path: ['mode'], handle: () => json({ mode: 'READWRITE' }) },
  ];
}

function versionOf(registry: SchemaRegistryService, req: RouteRequest) {
  const spec = parseVersionSpec(req.params.version);
  return registry.getVersion(req.params.subject, spec, flag(req.query, 'deleted'));
}

/** Confluent reads `compatibility`; `compatibilityLevel` (the GET shape) is accepted too. */
function levelOf(body: Record<string, unknown>): unknown {
  return body.compatibility ?? body.compatibilityLevel;
}

async function compatibility(
  registry: SchemaRegistryService,
  req: RouteRequest,
  version: string | undefined,
): Promise<RouteResult> {
  const spec = version === undefined ? undefined : parseVersionSpec(version);
  const body = await schemaBody(req);
  const result = registry.testCompatibility(req.params.subject, spec, body.schema, body.schemaType);
  return json(
    flag(req.query, 'verbose')
      ? { is_compatible: result.compatible, messages: result.messages }
      : { is_compatible: result.compatible },
  );
}
