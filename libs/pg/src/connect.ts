import { Client } from 'pg';
import { ConnectionError } from '@pgferry/core';
import { classifyPgError } from './classify';
import { clientConfig, describeEndpoint, type ClientConfigOptions, type Endpoint } from './endpoint';

/**
 * Opens a connection with the endpoint's TLS settings. sslmode=prefer tries TLS first and
 * reconnects in plain text only when the server says it has no TLS, as libpq does.
 * Every session gets standard_conforming_strings = on (the literal quoter relies on it).
 * Errors are classified (see classify.ts) and name the endpoint, never the password.
 */
export async function connect(
  ep: Endpoint,
  role: string,
  options: ClientConfigOptions = {},
): Promise<Client> {
  const context = `connecting to ${role} ${describeEndpoint(ep)}`;
  try {
    return await open(ep, options);
  } catch (err) {
    const classified = classifyPgError(err, context);
    if (
      ep.ssl.mode === 'prefer' &&
      classified instanceof ConnectionError &&
      classified.code === 'TLS_UNSUPPORTED'
    ) {
      try {
        return await open(ep, { ...options, plain: true });
      } catch (err2) {
        throw classifyPgError(err2, context);
      }
    }
    throw classified;
  }
}

async function open(ep: Endpoint, options: ClientConfigOptions): Promise<Client> {
  const client = new Client(clientConfig(ep, options));
  // A connection that dies while idle emits 'error'; without a listener Node would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
    if (!options.replication) await client.query('SET standard_conforming_strings = on');
    return client;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}
