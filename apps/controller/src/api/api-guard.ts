import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { writePrivateFile } from '@pgferry/core';

/** Methods that change nothing: the only ones a cross-origin request may use. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The file, in the work dir, that holds the API's bearer token (0600). */
export const API_TOKEN_FILE = 'api-token';

/** A new bearer token (32 random bytes), written 0600 to `<dir>/api-token`; returns both. */
export function newApiToken(dir: string): { token: string; file: string } {
  const token = randomBytes(32).toString('base64url');
  const file = join(dir, API_TOKEN_FILE);
  writePrivateFile(file, `${token}\n`);
  return { token, file };
}

/**
 * The task API's front door, before any route: a request must carry `Authorization: Bearer
 * <token>` (401 otherwise), and a mutating request (POST, ...) a browser sends from another
 * origin is refused (403) whatever it carries, so that a web page the user visits cannot ask
 * for a cutover: a browser names the page's origin in Origin and Sec-Fetch-Site; curl and other
 * programs send neither. `tokenHint` says where the token is, in the 401 body.
 */
export function apiGuard(
  token: string,
  tokenHint: string,
): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  const expected = Buffer.from(token, 'utf8');
  return (req, res, next) => {
    const method = (req.method ?? 'GET').toUpperCase();
    if (!SAFE_METHODS.has(method)) {
      const origin = req.headers.origin;
      const site = req.headers['sec-fetch-site'];
      const own = `http://${req.headers.host ?? ''}`;
      const crossOrigin =
        (origin !== undefined && origin !== own) ||
        (typeof site === 'string' && site !== 'same-origin' && site !== 'none');
      if (crossOrigin)
        return refuse(
          res,
          403,
          `cross-origin ${method} ${req.url} refused (Origin: ${origin ?? 'none'}, Sec-Fetch-Site: ${String(site ?? 'none')}): the task API takes changes only from programs (curl, pgferry) or its own origin`,
        );
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const given = m ? Buffer.from(m[1], 'utf8') : null;
    if (!given || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="pgferry task API"');
      return refuse(
        res,
        401,
        `the task API requires the header Authorization: Bearer <token>${given ? ' with its own token' : ''}; the token is ${tokenHint}`,
      );
    }
    next();
  };
}

/** The answer in Nest's error shape ({ statusCode, error, message }), as the routes' errors have. */
function refuse(res: ServerResponse, status: 401 | 403, message: string): void {
  const body = JSON.stringify({
    statusCode: status,
    error: status === 401 ? 'Unauthorized' : 'Forbidden',
    message,
  });
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}
