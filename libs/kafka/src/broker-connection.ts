import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { AuthenticationError, ConnectionError, PgferryError } from '@pgferry/core';
import {
  API_SPECS,
  ApiKey,
  apiName,
  decodeResponseBody,
  encodeRequestFrame,
  responseCorrelationId,
  type ApiVersionsResponse,
  type KafkaApiKey,
  type KafkaApis,
} from '@pgferry/kafka-protocol';
import type { KafkaSaslOptions, KafkaTlsOptions } from './kafka-config';
import { classifyKafkaError, kafkaError } from './kafka-errors';
import { saslExchange } from './sasl';

/**
 * One TCP (or TLS) connection to one Kafka broker: frames requests with the shared codec
 * (kafka-protocol), matches responses to them by correlation id, and negotiates on open what
 * both sides speak (ApiVersions) and who the client is (SASL).
 *
 * Why our own and not a client library's: kafkajs is unmaintained and sends only its own
 * encodings, and the librdkafka binding takes messages one by one; pgferry sends record batches
 * it wrote itself and reads the batches of a fetch without an object per record (measured:
 * librdkafka's binding produced 1M records of 180 bytes in 11.1 s and 12.4 cpu-s, pgferry's
 * producer over kafkajs' connections in 1.7 s and 0.8 cpu-s, against the same Kafka 4.4).
 *
 * Contract: requests are written in call order and Kafka answers them in that order; a
 * response that does not come within its timeout, or a socket that closes or errs, fails every
 * request in flight with a ConnectionError and closes the connection for good (the cluster
 * opens a new one). Not reused after `close`.
 */

export interface BrokerConnectionOptions {
  host: string;
  port: number;
  /** Names the broker in errors, e.g. "Kafka broker 1 (10.0.0.5:9092)". */
  label: string;
  clientId: string;
  tls?: boolean | KafkaTlsOptions | null;
  sasl?: KafkaSaslOptions | null;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

interface Pending {
  correlationId: number;
  apiKey: number;
  version: number;
  resolve: (payload: Buffer) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
}

/** Versions of the ApiVersions request itself: 2 is the newest without flexible encoding. */
const API_VERSIONS_VERSION = 2;

export class BrokerConnection {
  /** apiKey -> the versions the broker answers (ApiVersions). */
  private versions = new Map<number, { min: number; max: number }>();
  private readonly pending: Pending[] = [];
  private chunks: Buffer[] = [];
  private buffered = 0;
  private nextId = 1;
  private failure: Error | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly options: BrokerConnectionOptions,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(classifyKafkaError(err, `connection to ${options.label}`)));
    socket.on('close', () => this.fail(new ConnectionError(`${options.label} closed the connection`)));
  }

  /** Opens, negotiates versions, authenticates. Rejects with a classified error. */
  static async open(options: BrokerConnectionOptions): Promise<BrokerConnection> {
    const socket = await openSocket(options);
    const conn = new BrokerConnection(socket, options);
    try {
      await conn.negotiate();
      if (options.sasl) await conn.authenticate(options.sasl);
      return conn;
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /** The highest version of `apiKey` both the broker and pgferry's codec speak, or -1. */
  versionOf(apiKey: number): number {
    const ours = API_SPECS.get(apiKey);
    const theirs = this.versions.get(apiKey);
    if (!ours || !theirs) return -1;
    const v = Math.min(ours.max, theirs.max);
    return v >= Math.max(ours.min, theirs.min) ? v : -1;
  }

  /** versionOf, or an error naming both ranges (Kafka 0.11+ and 4.x answer every API pgferry needs). */
  requireVersion(apiKey: number, atLeast = 0): number {
    const v = this.versionOf(apiKey);
    if (v >= atLeast && v >= 0) return v;
    const ours = API_SPECS.get(apiKey);
    const theirs = this.versions.get(apiKey);
    throw new PgferryError(
      `${this.options.label} does not answer ${apiName(apiKey)} in a version pgferry speaks (broker: ${theirs ? `v${theirs.min}-v${theirs.max}` : 'none'}, pgferry: v${Math.max(atLeast, ours?.min ?? 0)}-v${ours?.max}); pgferry needs Kafka 0.11 or later`,
      { code: 'UNSUPPORTED_VERSION' },
    );
  }

  /**
   * Sends one request and resolves with its decoded response. `extraTimeoutMs` adds to the
   * request timeout what the broker may wait on purpose (a Fetch's maxWaitMs). Rejects with a
   * ConnectionError when the connection fails; error codes in the response are the caller's.
   */
  async request<K extends KafkaApiKey>(
    apiKey: K,
    body: KafkaApis[K]['request'],
    options: { version?: number; extraTimeoutMs?: number } = {},
  ): Promise<KafkaApis[K]['response']> {
    const version = options.version ?? this.requireVersion(apiKey);
    const payload = await this.send(apiKey, version, body, options.extraTimeoutMs ?? 0);
    try {
      return decodeResponseBody<KafkaApis[K]['response']>(apiKey, version, payload);
    } catch (err) {
      const e = classifyKafkaError(err, `reading the ${apiName(apiKey)} response of ${this.options.label}`);
      this.fail(e);
      throw e;
    }
  }

  close(): void {
    this.fail(new ConnectionError(`the connection to ${this.options.label} was closed`));
  }

  private send(apiKey: number, version: number, body: object, extraTimeoutMs: number): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const correlationId = this.nextId;
    this.nextId = this.nextId === 0x7fffffff ? 1 : this.nextId + 1;
    const parts = encodeRequestFrame(apiKey, version, correlationId, this.options.clientId, body);
    return new Promise<Buffer>((resolve, reject) => {
      const timeoutMs = this.options.requestTimeoutMs + extraTimeoutMs;
      const timer = setTimeout(
        () =>
          this.fail(
            new ConnectionError(
              `${this.options.label} did not answer ${apiName(apiKey)} within ${Math.round(timeoutMs / 1000)} s`,
            ),
          ),
        timeoutMs,
      );
      this.pending.push({ correlationId, apiKey, version, resolve, reject, timer });
      if (parts.length === 1) this.socket.write(parts[0]);
      else {
        this.socket.cork();
        for (const p of parts) this.socket.write(p);
        process.nextTick(() => this.socket.uncork());
      }
    });
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      const head = this.chunks[0].length >= 4 ? this.chunks[0] : Buffer.concat(this.chunks);
      const size = head.readInt32BE(0);
      if (this.buffered < 4 + size) return;
      let frame: Buffer;
      if (this.chunks[0].length >= 4 + size) {
        frame = this.chunks[0].subarray(4, 4 + size);
        const rest = this.chunks[0].subarray(4 + size);
        if (rest.length) this.chunks[0] = rest;
        else this.chunks.shift();
      } else {
        const all = Buffer.concat(this.chunks);
        frame = all.subarray(4, 4 + size);
        this.chunks = all.length > 4 + size ? [all.subarray(4 + size)] : [];
      }
      this.buffered -= 4 + size;
      this.onFrame(frame);
      if (this.failure) return;
    }
  }

  private onFrame(payload: Buffer): void {
    const next = this.pending.shift();
    if (!next) {
      this.fail(new ConnectionError(`${this.options.label} sent a response to no request`));
      return;
    }
    clearTimeout(next.timer);
    const id = payload.length >= 4 ? responseCorrelationId(payload) : -1;
    if (id !== next.correlationId) {
      next.reject(new ConnectionError(`${this.options.label} answered out of order`));
      this.fail(
        new ConnectionError(
          `${this.options.label} answered out of order (correlation id ${id}, expected ${next.correlationId})`,
        ),
      );
      return;
    }
    next.resolve(payload);
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(this.failure);
    }
    this.socket.destroy();
  }

  private async negotiate(): Promise<void> {
    const payload = await this.send(ApiKey.ApiVersions, API_VERSIONS_VERSION, {}, 0);
    // A broker that does not know version 2 answers with version 0 and UNSUPPORTED_VERSION,
    // and still lists its versions (KIP-511).
    const errorCode = payload.length >= 6 ? payload.readInt16BE(4) : -1;
    let res: ApiVersionsResponse;
    try {
      res = decodeResponseBody<ApiVersionsResponse>(
        ApiKey.ApiVersions,
        errorCode === 35 ? 0 : API_VERSIONS_VERSION,
        payload,
      );
    } catch (err) {
      throw classifyKafkaError(err, `reading the ApiVersions response of ${this.options.label}`);
    }
    if (res.errorCode !== 0 && res.errorCode !== 35)
      throw kafkaError(res.errorCode, `asking ${this.options.label} for its API versions`);
    this.versions = new Map(res.apiKeys.map((k) => [k.apiKey, { min: k.minVersion, max: k.maxVersion }]));
  }

  private async authenticate(sasl: KafkaSaslOptions): Promise<void> {
    const exchange = saslExchange(sasl);
    const where = `authenticating to ${this.options.label} with SASL ${exchange.name}`;
    if (this.versionOf(ApiKey.SaslHandshake) < 1 || this.versionOf(ApiKey.SaslAuthenticate) < 0)
      throw new AuthenticationError(
        `${where}: the broker has no SASL on this listener (it does not answer SaslHandshake v1); connect to its SASL listener or remove kafka.sasl`,
      );
    const hs = await this.request(ApiKey.SaslHandshake, { mechanism: exchange.name });
    if (hs.errorCode !== 0)
      throw new AuthenticationError(
        `${where}: the broker does not offer ${exchange.name} (it offers ${hs.mechanisms.join(', ') || 'none'}); set kafka.sasl.mechanism to one of them`,
        { code: 'UNSUPPORTED_SASL_MECHANISM' },
      );
    let server: Buffer | null = null;
    for (let out = exchange.step(null); out; out = exchange.step(server)) {
      const res = await this.request(ApiKey.SaslAuthenticate, { authBytes: out });
      if (res.errorCode !== 0) {
        const e = kafkaError(res.errorCode, where, res.errorMessage);
        throw new AuthenticationError(`${e.message}; check kafka.sasl.username and its password`, {
          code: e.code,
        });
      }
      server = res.authBytes;
    }
  }
}

function openSocket(o: BrokerConnectionOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const tls = o.tls === true ? {} : o.tls || null;
    const socket: Socket = tls
      ? tlsConnect({
          host: o.host,
          port: o.port,
          ca: tls.ca,
          cert: tls.cert,
          key: tls.key,
          servername: tls.servername ?? (isIp(o.host) ? undefined : o.host),
          rejectUnauthorized: tls.rejectUnauthorized ?? true,
        })
      : netConnect({ host: o.host, port: o.port });
    const ready = tls ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ConnectionError(
          `connecting to ${o.label} timed out after ${Math.round(o.connectTimeoutMs / 1000)} s`,
        ),
      );
    }, o.connectTimeoutMs);
    socket.once(ready, () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(classifyKafkaError(err, `connecting to ${o.label}`));
    };
    socket.once('error', onError);
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
