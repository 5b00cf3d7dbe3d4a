import { saslExchange } from '@pgferry/kafka';
import { BrokerSaslCredentials, SaslSession } from './sasl-server';

const credentials = new BrokerSaslCredentials({ username: 'user', password: 'pencil' });

/** Runs pgferry's client exchange against a broker session; the last result and the session. */
function exchange(
  mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512',
  username: string,
  password: string,
) {
  const session = new SaslSession(credentials);
  const client = saslExchange({ mechanism, username, password });
  expect(session.handshake(client.name).errorCode).toBe(0);
  let last = null;
  let server: Buffer | null = null;
  for (let out = client.step(null); out;) {
    last = session.authenticate(out);
    if (last.errorCode) break;
    server = last.authBytes;
    out = client.step(server);
  }
  return { session, last: last! };
}

describe('SaslSession (the broker side of SASL)', () => {
  it.each(['plain', 'scram-sha-256', 'scram-sha-512'] as const)(
    'authenticates %s with the right password',
    (m) => {
      const { session, last } = exchange(m, 'user', 'pencil');
      expect(last.errorCode).toBe(0);
      expect(session.authenticated).toBe(true);
    },
  );

  it.each(['plain', 'scram-sha-256', 'scram-sha-512'] as const)(
    'refuses %s with a wrong password or user, in Kafka words, and closes',
    (m) => {
      for (const [u, p] of [
        ['user', 'pencils'],
        ['someone', 'pencil'],
      ]) {
        const { session, last } = exchange(m, u, p);
        expect(session.authenticated).toBe(false);
        expect(last).toMatchObject({
          errorCode: 58,
          close: true,
          errorMessage: `Authentication failed during authentication due to invalid credentials with SASL mechanism ${m.toUpperCase()}`,
        });
      }
    },
  );

  it('offers its mechanisms on an unknown one, and refuses tokens before a handshake', () => {
    const session = new SaslSession(credentials);
    expect(session.authenticate(Buffer.from('\u0000user\u0000pencil'))).toMatchObject({
      errorCode: 34,
      close: true,
    });
    expect(session.handshake('GSSAPI')).toEqual({
      errorCode: 33,
      mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'],
    });
    expect(session.authenticated).toBe(false);
  });

  it('refuses a SCRAM final message whose nonce the server did not give', () => {
    const session = new SaslSession(credentials);
    session.handshake('SCRAM-SHA-256');
    expect(session.authenticate(Buffer.from('n,,n=user,r=abc')).errorCode).toBe(0);
    expect(session.authenticate(Buffer.from('c=biws,r=abcforged,p=AAAA')).errorCode).toBe(58);
    expect(session.authenticated).toBe(false);
  });
});
