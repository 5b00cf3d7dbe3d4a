import { AuthenticationError } from '@pgferry/core';
import { saslExchange } from './sasl';

const text = (b: Buffer | null) => b?.toString('utf8') ?? null;

describe('SASL exchanges', () => {
  it('PLAIN sends the authorization id, user and password once', () => {
    const x = saslExchange({ mechanism: 'plain', username: 'alice', password: 's3cret' });
    expect(x.name).toBe('PLAIN');
    expect(text(x.step(null))).toBe('\u0000alice\u0000s3cret');
    expect(x.step(Buffer.alloc(0))).toBeNull();
  });

  // RFC 7677 section 3: the SCRAM-SHA-256 exchange of user "user" with password "pencil".
  const nonce = 'rOprNGfwEbeRWgbNEkqO';
  const serverFirst =
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';

  it('SCRAM-SHA-256 gives the client messages of RFC 7677 and checks the server signature', () => {
    const x = saslExchange({ mechanism: 'scram-sha-256', username: 'user', password: 'pencil' }, nonce);
    expect(x.name).toBe('SCRAM-SHA-256');
    expect(text(x.step(null))).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    expect(text(x.step(Buffer.from(serverFirst)))).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(x.step(Buffer.from('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='))).toBeNull();
  });

  it('SCRAM refuses a server that does not know the password, and a nonce it did not extend', () => {
    const forged = saslExchange({ mechanism: 'scram-sha-256', username: 'user', password: 'pencil' }, nonce);
    forged.step(null);
    forged.step(Buffer.from(serverFirst));
    expect(() => forged.step(Buffer.from(`v=${Buffer.alloc(32).toString('base64')}`))).toThrow(
      /server signature does not match/,
    );
    const replay = saslExchange({ mechanism: 'scram-sha-512', username: 'user', password: 'pencil' }, nonce);
    replay.step(null);
    expect(() => replay.step(Buffer.from('r=somebodyElse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'))).toThrow(
      AuthenticationError,
    );
    const refused = saslExchange({ mechanism: 'scram-sha-512', username: 'user', password: 'pencil' }, nonce);
    refused.step(null);
    expect(() => refused.step(Buffer.from('e=unknown-user'))).toThrow(
      'Kafka SASL SCRAM-SHA-512 authentication as "user" failed: unknown-user',
    );
  });

  it('escapes "=" and "," in user names (RFC 5802 saslname)', () => {
    const x = saslExchange({ mechanism: 'scram-sha-512', username: 'a=b,c', password: 'p' }, 'n0nce');
    expect(text(x.step(null))).toBe('n,,n=a=3Db=2Cc,r=n0nce');
  });
});
