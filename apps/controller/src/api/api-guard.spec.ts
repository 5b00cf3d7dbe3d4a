import type { IncomingMessage, ServerResponse } from 'node:http';
import { apiGuard } from './api-guard';

/** Runs the guard on a request with `headers`; what it answered, or 'next' when it let it through. */
function run(
  method: string,
  headers: Record<string, string>,
): { status: number | 'next'; body?: { message: string } } {
  let status: number | 'next' = 'next';
  let body: string | undefined;
  const res = {
    setHeader: () => undefined,
    writeHead: (s: number) => (status = s),
    end: (b: string) => (body = b),
  } as unknown as ServerResponse;
  const req = {
    method,
    url: '/tasks/t/cutover',
    headers: { host: '127.0.0.1:8088', ...headers },
  } as IncomingMessage;
  apiGuard('tok3n', 'in /w/api-token')(req, res, () => undefined);
  return { status, body: body && JSON.parse(body) };
}

describe('apiGuard', () => {
  const bearer = { authorization: 'Bearer tok3n' };

  it('lets through a request with the token: from a program, and from its own origin', () => {
    expect(run('GET', bearer).status).toBe('next');
    expect(run('POST', bearer).status).toBe('next');
    expect(
      run('POST', { ...bearer, origin: 'http://127.0.0.1:8088', 'sec-fetch-site': 'same-origin' }).status,
    ).toBe('next');
  });

  it('answers 401 without the token or with another, naming where it is', () => {
    expect(run('GET', {})).toEqual({
      status: 401,
      body: {
        statusCode: 401,
        error: 'Unauthorized',
        message:
          'the task API requires the header Authorization: Bearer <token>; the token is in /w/api-token',
      },
    });
    expect(run('GET', { authorization: 'Bearer tok3m' }).status).toBe(401);
    expect(run('GET', { authorization: 'Basic dG9rM24=' }).status).toBe(401);
  });

  it('answers 403 to a change from another origin whatever it carries; reads from anywhere need only the token', () => {
    expect(run('POST', { ...bearer, origin: 'http://evil.example' }).status).toBe(403);
    expect(run('POST', { ...bearer, 'sec-fetch-site': 'cross-site' }).status).toBe(403);
    expect(run('DELETE', { ...bearer, origin: 'null' }).body?.message).toMatch(
      /^cross-origin DELETE \/tasks\/t\/cutover refused/,
    );
    expect(run('GET', { ...bearer, origin: 'http://evil.example' }).status).toBe('next');
  });
});
