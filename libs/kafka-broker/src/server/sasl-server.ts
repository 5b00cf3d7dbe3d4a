import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ErrorCode } from '@pgferry/kafka-protocol';

/**
 * The broker side of Kafka's SASL authentication (KIP-152: SaslHandshake v1, then the tokens in
 * SaslAuthenticate requests), for one user: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
 * RFC 7677), as Kafka's PlainSaslServer and ScramSaslServer answer them. The password is never
 * kept in a form SCRAM sends; PLAIN compares it in constant time.
 */
export interface BrokerSaslUser {
  username: string;
  password: string;
}

/** The mechanisms offered, in the order SaslHandshake lists them. */
export const BROKER_SASL_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'] as const;
type Mechanism = (typeof BROKER_SASL_MECHANISMS)[number];

/** Kafka's default iteration count for SCRAM credentials (kafka-configs --add-config). */
const SCRAM_ITERATIONS = 4096;

interface ScramCredential {
  hash: 'sha256' | 'sha512';
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** The one user's credentials, derived once when the broker starts. */
export class BrokerSaslCredentials {
  private readonly scram = new Map<string, ScramCredential>();
  private readonly password: Buffer;

  constructor(readonly user: BrokerSaslUser) {
    this.password = Buffer.from(user.password, 'utf8');
    for (const [name, hash, bytes] of [
      ['SCRAM-SHA-256', 'sha256', 32],
      ['SCRAM-SHA-512', 'sha512', 64],
    ] as const) {
      const salt = randomBytes(16);
      const salted = pbkdf2Sync(this.password, salt, SCRAM_ITERATIONS, bytes, hash);
      const clientKey = hmac(hash, salted, 'Client Key');
      this.scram.set(name, {
        hash,
        salt,
        storedKey: createHash(hash).update(clientKey).digest(),
        serverKey: hmac(hash, salted, 'Server Key'),
      });
    }
  }

  plainMatches(username: string, password: string): boolean {
    const given = Buffer.from(password, 'utf8');
    const same = given.length === this.password.length && timingSafeEqual(given, this.password);
    return same && username === this.user.username;
  }

  scramCredential(mechanism: string, username: string): ScramCredential | undefined {
    return username === this.user.username ? this.scram.get(mechanism) : undefined;
  }
}

/** What a SaslAuthenticate request gets back; `close` once the response is written (a failure). */
export interface SaslStepResult {
  errorCode: number;
  errorMessage: string | null;
  authBytes: Buffer;
  close: boolean;
}

/**
 * One connection's authentication. Contract: `authenticated` turns true only after the whole
 * exchange of a mechanism the handshake chose succeeded; a failure answers
 * SASL_AUTHENTICATION_FAILED (or ILLEGAL_SASL_STATE out of order) and asks for the connection to
 * be closed, as Kafka does.
 */
export class SaslSession {
  authenticated = false;
  private mechanism: Mechanism | null = null;
  private scram: { cred: ScramCredential; nonce: string; firstBare: string; serverFirst: string } | null =
    null;

  constructor(private readonly credentials: BrokerSaslCredentials) {}

  /** SaslHandshake: chooses the mechanism, or UNSUPPORTED_SASL_MECHANISM with the list. */
  handshake(mechanism: string): { errorCode: number; mechanisms: string[] } {
    const mechanisms = [...BROKER_SASL_MECHANISMS];
    if (this.authenticated || this.mechanism) return { errorCode: ErrorCode.ILLEGAL_SASL_STATE, mechanisms };
    if (!(mechanisms as string[]).includes(mechanism))
      return { errorCode: ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms };
    this.mechanism = mechanism as Mechanism;
    return { errorCode: 0, mechanisms };
  }

  /** SaslAuthenticate: one token of the chosen mechanism. */
  authenticate(token: Buffer): SaslStepResult {
    if (this.authenticated || !this.mechanism)
      return failed(
        ErrorCode.ILLEGAL_SASL_STATE,
        'SaslAuthenticate before a SaslHandshake chose a mechanism',
      );
    if (this.mechanism === 'PLAIN') return this.plain(token);
    return this.scram ? this.scramFinal(token) : this.scramFirst(token);
  }

  private plain(token: Buffer): SaslStepResult {
    // authzid NUL authcid NUL passwd; an authzid, when given, must be the user itself.
    const parts = token.toString('utf8').split('\u0000');
    const ok =
      parts.length === 3 &&
      (parts[0] === '' || parts[0] === parts[1]) &&
      this.credentials.plainMatches(parts[1], parts[2]);
    if (!ok) return invalidCredentials('PLAIN');
    this.authenticated = true;
    return done(Buffer.alloc(0));
  }

  private scramFirst(token: Buffer): SaslStepResult {
    const text = token.toString('utf8');
    // gs2-header: "n,," (no channel binding) or "y,,"; an authzid or "p=" binding is refused.
    const m = /^([ny]),,(n=([^,]*),r=([^,]+)(,.*)?)$/.exec(text);
    if (!m) return failed(ErrorCode.SASL_AUTHENTICATION_FAILED, `malformed SCRAM client-first message`);
    const username = m[3].replace(/=2C/g, ',').replace(/=3D/g, '=');
    const cred = this.credentials.scramCredential(this.mechanism!, username);
    if (!cred) return invalidCredentials(this.mechanism!);
    const nonce = m[4] + randomBytes(18).toString('base64');
    const serverFirst = `r=${nonce},s=${cred.salt.toString('base64')},i=${SCRAM_ITERATIONS}`;
    this.scram = { cred, nonce, firstBare: m[2], serverFirst };
    return { errorCode: 0, errorMessage: null, authBytes: Buffer.from(serverFirst, 'utf8'), close: false };
  }

  private scramFinal(token: Buffer): SaslStepResult {
    const { cred, nonce, firstBare, serverFirst } = this.scram!;
    const text = token.toString('utf8');
    const m = /^(c=([^,]*),r=([^,]+)(?:,[^p][^,]*)*),p=([A-Za-z0-9+/=]+)$/.exec(text);
    // endsWith, as Kafka's ScramSaslServer checks: librdkafka sends its own nonce again before
    // the server's (which starts with it), and signs what it sent.
    if (!m || !m[3].endsWith(nonce) || (m[2] !== 'biws' && m[2] !== 'eSws'))
      return invalidCredentials(this.mechanism!);
    const authMessage = `${firstBare},${serverFirst},${m[1]}`;
    const proof = Buffer.from(m[4], 'base64');
    const signature = hmac(cred.hash, cred.storedKey, authMessage);
    if (proof.length !== signature.length) return invalidCredentials(this.mechanism!);
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = proof[i] ^ signature[i];
    if (!timingSafeEqual(createHash(cred.hash).update(clientKey).digest(), cred.storedKey))
      return invalidCredentials(this.mechanism!);
    this.authenticated = true;
    const serverSignature = hmac(cred.hash, cred.serverKey, authMessage);
    return done(Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'));
  }
}

function hmac(hash: 'sha256' | 'sha512', key: Buffer, text: string): Buffer {
  return createHmac(hash, key).update(text, 'utf8').digest();
}

function done(authBytes: Buffer): SaslStepResult {
  return { errorCode: 0, errorMessage: null, authBytes, close: false };
}

function failed(errorCode: number, errorMessage: string): SaslStepResult {
  return { errorCode, errorMessage, authBytes: Buffer.alloc(0), close: true };
}

/** Kafka's own wording (SaslServerAuthenticator), which clients show to their users. */
function invalidCredentials(mechanism: string): SaslStepResult {
  return failed(
    ErrorCode.SASL_AUTHENTICATION_FAILED,
    `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`,
  );
}
