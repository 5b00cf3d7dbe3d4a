import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthenticationError } from '@pgferry/core';
import type { KafkaSaslOptions } from './kafka-config';

/**
 * The client side of Kafka's SASL mechanisms: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802,
 * RFC 7677), as the Java client's PlainSaslClient and ScramSaslClient speak them. Each step
 * takes the server's last message (null for the first step) and gives the next client message,
 * or null when the exchange is over. Usernames are escaped as RFC 5802 says; passwords are used
 * as given (no SASLprep: Kafka's own client does not apply it either).
 */
export interface SaslExchange {
  /** The name Kafka knows the mechanism by (SaslHandshake). */
  readonly name: string;
  step(server: Buffer | null): Buffer | null;
}

/** `nonce` is for tests against published exchanges; by default 24 random bytes. */
export function saslExchange(
  options: KafkaSaslOptions,
  nonce = randomBytes(24).toString('base64'),
): SaslExchange {
  switch (options.mechanism) {
    case 'plain':
      return new PlainExchange(options.username, options.password);
    case 'scram-sha-256':
      return new ScramExchange('SCRAM-SHA-256', 'sha256', 32, options.username, options.password, nonce);
    case 'scram-sha-512':
      return new ScramExchange('SCRAM-SHA-512', 'sha512', 64, options.username, options.password, nonce);
  }
}

class PlainExchange implements SaslExchange {
  readonly name = 'PLAIN';
  private sent = false;

  constructor(
    private readonly username: string,
    private readonly password: string,
  ) {}

  step(): Buffer | null {
    if (this.sent) return null;
    this.sent = true;
    return Buffer.from(`\u0000${this.username}\u0000${this.password}`, 'utf8');
  }
}

/** SCRAM attribute list "a=1,b=2" -> map (values may contain '='). */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

class ScramExchange implements SaslExchange {
  private state: 'first' | 'final' | 'verify' | 'done' = 'first';
  private clientFirstBare = '';
  private serverSignature: Buffer | null = null;

  constructor(
    readonly name: string,
    private readonly hash: 'sha256' | 'sha512',
    private readonly keyBytes: number,
    private readonly username: string,
    private readonly password: string,
    private readonly nonce: string,
  ) {}

  step(server: Buffer | null): Buffer | null {
    switch (this.state) {
      case 'first': {
        const user = this.username.replace(/=/g, '=3D').replace(/,/g, '=2C');
        this.clientFirstBare = `n=${user},r=${this.nonce}`;
        this.state = 'final';
        return Buffer.from(`n,,${this.clientFirstBare}`, 'utf8');
      }
      case 'final': {
        const serverFirst = (server ?? Buffer.alloc(0)).toString('utf8');
        const a = attributes(serverFirst);
        const nonce = a.get('r') ?? '';
        const salt = Buffer.from(a.get('s') ?? '', 'base64');
        const iterations = Number(a.get('i'));
        if (a.has('e')) throw this.refused(a.get('e')!);
        if (!nonce.startsWith(this.nonce) || !salt.length || !Number.isInteger(iterations) || iterations < 1)
          throw this.refused('the server-first message is malformed');
        const salted = pbkdf2Sync(
          Buffer.from(this.password, 'utf8'),
          salt,
          iterations,
          this.keyBytes,
          this.hash,
        );
        const clientKey = this.hmac(salted, 'Client Key');
        const storedKey = createHash(this.hash).update(clientKey).digest();
        const finalWithoutProof = `c=biws,r=${nonce}`;
        const authMessage = `${this.clientFirstBare},${serverFirst},${finalWithoutProof}`;
        const signature = this.hmac(storedKey, authMessage);
        const proof = Buffer.alloc(clientKey.length);
        for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ signature[i];
        this.serverSignature = this.hmac(this.hmac(salted, 'Server Key'), authMessage);
        this.state = 'verify';
        return Buffer.from(`${finalWithoutProof},p=${proof.toString('base64')}`, 'utf8');
      }
      case 'verify': {
        const a = attributes((server ?? Buffer.alloc(0)).toString('utf8'));
        if (a.has('e')) throw this.refused(a.get('e')!);
        const v = Buffer.from(a.get('v') ?? '', 'base64');
        if (v.length !== this.serverSignature!.length || !timingSafeEqual(v, this.serverSignature!))
          throw this.refused('the server signature does not match: the broker does not know this password');
        this.state = 'done';
        return null;
      }
      case 'done':
        return null;
    }
  }

  private hmac(key: Buffer, text: string): Buffer {
    return createHmac(this.hash, key).update(text, 'utf8').digest();
  }

  private refused(why: string): AuthenticationError {
    return new AuthenticationError(
      `Kafka SASL ${this.name} authentication as ${JSON.stringify(this.username)} failed: ${why}`,
    );
  }
}
