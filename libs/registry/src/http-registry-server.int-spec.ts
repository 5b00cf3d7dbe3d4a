import { request } from 'node:http';
import { type SchemaRegistryServer, startSchemaRegistry } from './http-registry-server';
import { InMemorySchemaLog } from './schema-log';

const V1 = 'application/vnd.schemaregistry.v1+json';
const user1 = JSON.stringify({ type: 'record', name: 'User', fields: [{ name: 'id', type: 'long' }] });
const user2 = JSON.stringify({
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'email', type: 'string', default: '' },
  ],
});
const user3NoDefault = JSON.stringify({
  type: 'record',
  name: 'User',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'age', type: 'int' },
  ],
});

interface Reply {
  status: number;
  contentType: string | null;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

describe('schema registry HTTP API', () => {
  let server: SchemaRegistryServer;
  let log: InMemorySchemaLog;

  async function call(method: string, path: string, body?: unknown, contentType = V1): Promise<Reply> {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': contentType },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, contentType: res.headers.get('content-type'), text, body: parsed };
  }
  const register = (subject: string, schema: string) =>
    call('POST', `/subjects/${encodeURIComponent(subject)}/versions`, { schema });

  beforeEach(async () => {
    log = new InMemorySchemaLog();
    server = await startSchemaRegistry({ port: 0, log, maxBodyBytes: 64 * 1024 });
  });
  afterEach(async () => {
    await server.close();
  });

  it('listens on 127.0.0.1 on the port it reports', () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves the root, the schema types and the mode', async () => {
    expect(await call('GET', '/')).toMatchObject({ status: 200, contentType: V1, body: {} });
    expect((await call('GET', '/schemas/types')).body).toEqual(['AVRO']);
    expect((await call('GET', '/mode')).body).toEqual({ mode: 'READWRITE' });
  });

  it('registers schemas, reusing ids for equal schemas across subjects', async () => {
    expect(await register('users-value', user1)).toMatchObject({
      status: 200,
      contentType: V1,
      body: { id: 1 },
    });
    expect((await register('users-value', JSON.stringify(JSON.parse(user1), null, 2))).body).toEqual({
      id: 1,
    });
    expect((await register('audit-value', user1)).body).toEqual({ id: 1 });
    expect((await register('users-value', user2)).body).toEqual({ id: 2 });
    const plainJson = await call(
      'POST',
      '/subjects/users-value/versions',
      { schema: user2 },
      'application/json',
    );
    expect(plainJson.body).toEqual({ id: 2 });
    const octets = await call(
      'POST',
      '/subjects/x/versions',
      { schema: '"string"' },
      'application/octet-stream',
    );
    expect(octets.body).toEqual({ id: 3 });
    expect((await call('POST', '/subjects/y/versions', { schema: user1, schemaType: 'AVRO' })).body).toEqual({
      id: 1,
    });
  });

  it('reads schemas by id', async () => {
    await register('a', user1);
    await register('b', user1);
    expect((await call('GET', '/schemas/ids/1')).body).toEqual({ schema: user1 });
    expect((await call('GET', '/schemas/ids/1?fetchMaxId=true')).body).toEqual({ schema: user1, maxId: 1 });
    expect(await call('GET', '/schemas/ids/1/schema')).toMatchObject({ status: 200, text: user1 });
    expect((await call('GET', '/schemas/ids/1/versions')).body).toEqual([
      { subject: 'a', version: 1 },
      { subject: 'b', version: 1 },
    ]);
    expect((await call('GET', '/schemas/ids/1/subjects')).body).toEqual(['a', 'b']);
    expect(await call('GET', '/schemas/ids/99')).toMatchObject({
      status: 404,
      body: { error_code: 40403, message: 'Schema 99 not found' },
    });
    expect(await call('GET', '/schemas/ids/abc')).toMatchObject({ status: 404, body: { error_code: 404 } });
  });

  it('lists subjects and versions and reads each version', async () => {
    await register('s', user1);
    await register('s', user2);
    expect((await call('GET', '/subjects')).body).toEqual(['s']);
    expect((await call('GET', '/subjects/s/versions')).body).toEqual([1, 2]);
    const v2 = { subject: 's', version: 2, id: 2, schema: user2 };
    expect((await call('GET', '/subjects/s/versions/latest')).body).toEqual(v2);
    expect((await call('GET', '/subjects/s/versions/-1')).body).toEqual(v2);
    expect((await call('GET', '/subjects/s/versions/1')).body).toEqual({
      subject: 's',
      version: 1,
      id: 1,
      schema: user1,
    });
    expect(await call('GET', '/subjects/s/versions/1/schema')).toMatchObject({ status: 200, text: user1 });
    expect((await call('GET', '/subjects/s/versions/1/referencedby')).body).toEqual([]);
    expect(await call('GET', '/subjects/s/versions/first')).toMatchObject({
      status: 422,
      body: { error_code: 42202 },
    });
    expect(await call('GET', '/subjects/s/versions/9')).toMatchObject({
      status: 404,
      body: { error_code: 40402, message: 'Version 9 not found.' },
    });
    expect(await call('GET', '/subjects/nope/versions')).toMatchObject({
      status: 404,
      body: { error_code: 40401, message: "Subject 'nope' not found." },
    });
    expect(await call('GET', '/subjects/nope/versions/latest')).toMatchObject({
      body: { error_code: 40401 },
    });
  });

  it('keeps percent-encoded slashes inside a subject name', async () => {
    expect((await register('team/orders-value', user1)).body).toEqual({ id: 1 });
    expect((await call('GET', '/subjects')).body).toEqual(['team/orders-value']);
    expect((await call('GET', '/subjects/team%2Forders-value/versions/1')).body).toMatchObject({
      subject: 'team/orders-value',
    });
  });

  it('looks a schema up under a subject', async () => {
    await register('s', user1);
    expect((await call('POST', '/subjects/s', { schema: user1 })).body).toEqual({
      subject: 's',
      version: 1,
      id: 1,
      schema: user1,
    });
    expect(await call('POST', '/subjects/s', { schema: user2 })).toMatchObject({
      status: 404,
      body: { error_code: 40403, message: 'Schema not found' },
    });
    expect(await call('POST', '/subjects/t', { schema: user1 })).toMatchObject({
      body: { error_code: 40401 },
    });
  });

  it('refuses incompatible and invalid schemas', async () => {
    await register('s', user1);
    const refused = await register('s', user3NoDefault);
    expect(refused.status).toBe(409);
    expect(refused.body.error_code).toBe(409);
    expect(refused.body.message).toContain('incompatible with an earlier schema for subject "s"');
    expect(refused.body.message).toContain(
      "The field 'age' at path '/fields/1' in the new schema has no default",
    );
    const invalid = await register('s', '{"type":"record","name":"R","fields":[{"name":"a","type":"nope"}]}');
    expect(invalid).toMatchObject({ status: 422, body: { error_code: 42201 } });
    expect(invalid.body.message).toMatch(/^Invalid schema: undefined type name: nope/);
    expect(await call('POST', '/subjects/s/versions', { schema: user1, schemaType: 'JSON' })).toMatchObject({
      status: 422,
      body: { error_code: 42201 },
    });
    const withReferences = { schema: user1, references: [{ name: 'Other', subject: 'other', version: 1 }] };
    expect(await call('POST', '/subjects/s/versions', withReferences)).toMatchObject({
      status: 422,
      body: {
        error_code: 42201,
        message: 'Invalid schema: schema references are not supported by this registry',
      },
    });
    expect((await call('GET', '/subjects/s/versions')).body).toEqual([1]);
  });

  it('tests compatibility, verbosely when asked', async () => {
    await register('s', user1);
    const path = '/compatibility/subjects/s/versions';
    expect((await call('POST', `${path}/latest`, { schema: user2 })).body).toEqual({ is_compatible: true });
    expect((await call('POST', `${path}/1?verbose=true`, { schema: user2 })).body).toEqual({
      is_compatible: true,
      messages: [],
    });
    expect((await call('POST', path, { schema: user3NoDefault })).body).toEqual({ is_compatible: false });
    const verbose = await call('POST', `${path}/latest?verbose=true`, { schema: user3NoDefault });
    expect(verbose.body.is_compatible).toBe(false);
    expect(verbose.body.messages).toContain('{oldSchemaVersion: 1}');
    expect(verbose.body.messages).toContain("{compatibility: 'BACKWARD'}");
    expect(await call('POST', `${path}/7`, { schema: user2 })).toMatchObject({ body: { error_code: 40402 } });
  });

  it('reads and writes the global and subject compatibility levels', async () => {
    expect((await call('GET', '/config')).body).toEqual({ compatibilityLevel: 'BACKWARD' });
    expect((await call('PUT', '/config', { compatibility: 'full' })).body).toEqual({ compatibility: 'FULL' });
    expect((await call('GET', '/config')).body).toEqual({ compatibilityLevel: 'FULL' });
    expect(await call('PUT', '/config', { compatibility: 'SIDEWAYS' })).toMatchObject({
      status: 422,
      body: { error_code: 42203 },
    });
    expect(await call('GET', '/config/s')).toMatchObject({
      status: 404,
      body: {
        error_code: 40408,
        message: "Subject 's' does not have subject-level compatibility configured",
      },
    });
    expect((await call('GET', '/config/s?defaultToGlobal=true')).body).toEqual({
      compatibilityLevel: 'FULL',
    });
    expect((await call('PUT', '/config/s', { compatibility: 'NONE' })).body).toEqual({
      compatibility: 'NONE',
    });
    expect((await call('GET', '/config/s')).body).toEqual({ compatibilityLevel: 'NONE' });
    await register('s', user1);
    expect((await register('s', user3NoDefault)).status).toBe(200);
    expect((await call('DELETE', '/config/s')).body).toEqual({ compatibilityLevel: 'NONE' });
    expect(await call('DELETE', '/config/s')).toMatchObject({ status: 404, body: { error_code: 40401 } });
  });

  it('soft-deletes and hard-deletes versions', async () => {
    await register('s', user1);
    await register('s', user2);
    expect(await call('DELETE', '/subjects/s/versions/2')).toMatchObject({ status: 200, body: 2 });
    expect((await call('GET', '/subjects/s/versions')).body).toEqual([1]);
    expect((await call('GET', '/subjects/s/versions?deleted=true')).body).toEqual([1, 2]);
    expect((await call('GET', '/subjects/s/versions/2?deleted=true')).body).toMatchObject({ id: 2 });
    expect(await call('DELETE', '/subjects/s/versions/2')).toMatchObject({ body: { error_code: 40406 } });
    expect(await call('DELETE', '/subjects/s/versions/1?permanent=true')).toMatchObject({
      status: 404,
      body: { error_code: 40407 },
    });
    expect((await call('DELETE', '/subjects/s/versions/2?permanent=true')).body).toBe(2);
    expect((await call('GET', '/subjects/s/versions?deleted=true')).body).toEqual([1]);
    expect(await call('GET', '/schemas/ids/2')).toMatchObject({ body: { error_code: 40403 } });
    expect(await call('DELETE', '/subjects/s/versions/x')).toMatchObject({ body: { error_code: 42202 } });
  });

  it('soft-deletes and hard-deletes subjects', async () => {
    await register('s', user1);
    await register('t', user2);
    expect(await call('DELETE', '/subjects/s?permanent=true')).toMatchObject({
      status: 404,
      body: {
        error_code: 40405,
        message: "Subject 's' was not deleted first before being permanently deleted",
      },
    });
    expect((await call('DELETE', '/subjects/s')).body).toEqual([1]);
    expect((await call('GET', '/subjects')).body).toEqual(['t']);
    expect((await call('GET', '/subjects?deleted=true')).body).toEqual(['s', 't']);
    expect((await call('GET', '/schemas/ids/1')).body).toEqual({ schema: user1 });
    expect(await call('DELETE', '/subjects/s')).toMatchObject({ body: { error_code: 40404 } });
    expect((await call('DELETE', '/subjects/s?permanent=true')).body).toEqual([1]);
    expect((await call('GET', '/subjects?deleted=true')).body).toEqual(['t']);
    expect(await call('DELETE', '/subjects/s')).toMatchObject({ status: 404, body: { error_code: 40401 } });
  });

  it('refuses a streamed (chunked) body once it passes the limit, and keeps serving', async () => {
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        `${server.url}/subjects/s/versions`,
        { method: 'POST', headers: { 'Content-Type': V1 } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
        },
      );
      req.on('error', reject);
      req.write(`{"schema": "${'x'.repeat(40_000)}`);
      req.write(`${'x'.repeat(40_000)}"}`);
      req.end();
    });
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toEqual({
      error_code: 413,
      message: 'Request body is larger than 65536 bytes',
    });
    expect((await register('s', user1)).body).toEqual({ id: 1 });
  });

  it('gives concurrent registrations of one new schema one id and one version', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => register('s', user1)));
    expect(new Set(replies.map((r) => r.body.id))).toEqual(new Set([1]));
    expect((await call('GET', '/subjects/s/versions')).body).toEqual([1]);
    expect(log.size).toBe(1);
  });

  it('answers unknown routes, wrong methods and bad bodies with Confluent-style errors', async () => {
    expect(await call('GET', '/nothing/here')).toMatchObject({
      status: 404,
      contentType: V1,
      body: { error_code: 404, message: 'HTTP 404 Not Found' },
    });
    expect(await call('PATCH', '/subjects')).toMatchObject({ status: 405, body: { error_code: 405 } });
    const notJson = await call('POST', '/subjects/s/versions', '{"schema": ');
    expect(notJson).toMatchObject({ status: 400, body: { error_code: 400 } });
    expect(notJson.body.message).toMatch(/^Request body is not valid JSON: /);
    expect(await call('POST', '/subjects/s/versions', '[]')).toMatchObject({
      status: 422,
      body: { error_code: 422 },
    });
    expect(await call('POST', '/subjects/s/versions', '')).toMatchObject({
      status: 422,
      body: { error_code: 422 },
    });
    expect(await call('POST', '/subjects/s/versions', { schema: 5 })).toMatchObject({
      status: 422,
      body: { error_code: 42201, message: 'Invalid schema: "schema" must be a string' },
    });
    expect(await call('POST', '/subjects/s/versions', { schema: user1 }, 'text/plain')).toMatchObject({
      status: 415,
      body: { error_code: 415 },
    });
    const huge = JSON.stringify({
      schema: JSON.stringify({ type: 'enum', name: 'E', symbols: ['A'], doc: 'x'.repeat(70_000) }),
    });
    expect(await call('POST', '/subjects/s/versions', huge)).toMatchObject({
      status: 413,
      body: { error_code: 413, message: 'Request body is larger than 65536 bytes' },
    });
    expect(log.size).toBe(0);
    // The server still serves after refusing a body.
    expect((await register('s', user1)).body).toEqual({ id: 1 });
  });
});
