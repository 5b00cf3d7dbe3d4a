import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { DataError } from '@pgferry/core';
import {
  encodeResponseFrame,
  Reader,
  Writer,
  ProtocolError,
  API_SPECS,
  ApiKey,
  ErrorCode,
  readStruct,
  writeStruct,
} from '@pgferry/kafka-protocol';
import {
  handleCreatePartitions,
  handleCreateTopics,
  handleDeleteTopics,
  handleDescribeConfigs,
  handleInitProducerId,
  handleMetadata,
} from './admin-handlers';
import { ReadArena } from '../storage/read-arena';
import { BrokerState, type BrokerOptions } from './broker-state';
import { handleDeleteRecords, handleFetch, handleListOffsets, handleProduce } from './data-handlers';
import {
  handleDescribeGroups,
  handleFindCoordinator,
  handleHeartbeat,
  handleJoinGroup,
  handleLeaveGroup,
  handleListGroups,
  handleOffsetCommit,
  handleOffsetFetch,
  handleSyncGroup,
  type ClientInfo,
} from './group-handlers';
import {
  BROKER_SASL_MECHANISMS,
  BrokerSaslCredentials,
  SaslSession,
  type BrokerSaslUser,
} from './sasl-server';

type Req = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The APIs of the shared codec a broker without SASL does not answer. */
const SASL_APIS: ReadonlySet<number> = new Set([ApiKey.SaslHandshake, ApiKey.SaslAuthenticate]);

/** What ApiVersions advertises: every API this broker answers, with the versions it reads. */
const apiVersionsOf = (sasl: boolean) =>
  [...API_SPECS.values()]
    .filter((s) => sasl || !SASL_APIS.has(s.key))
    .map((s) => ({ apiKey: s.key, minVersion: s.min, maxVersion: s.max }));

/** Who may connect: SASL credentials, and TLS on the listener. Both off by default. */
export interface ListenerSecurity {
  /**
   * The one user every connection must authenticate as (SASL PLAIN, SCRAM-SHA-256 or
   * SCRAM-SHA-512) before any request but ApiVersions and the SASL ones is answered.
   */
  sasl?: BrokerSaslUser | null;
  /** TLS on the listener: the broker's certificate chain and key, PEM text. */
  tls?: { cert: string; key: string } | null;
}

/** Request frames from this size on are assembled in a reusable buffer (see onConnection). */
const POOLED_FRAME_BYTES = 64 * 1024;

/**
 * Copies the first frame (after its 4-byte size) out of `chunks` into `frame` (`size` bytes) and
 * leaves the bytes after it as the only chunk.
 */
function takeFrame(chunks: Buffer[], size: number, frame: Buffer): void {
  let skip = 4;
  let copied = 0;
  let i = 0;
  for (; i < chunks.length && copied < size; i++) {
    const c = chunks[i];
    if (skip >= c.length) {
      skip -= c.length;
      continue;
    }
    const n = Math.min(c.length - skip, size - copied);
    c.copy(frame, copied, skip, skip + n);
    copied += n;
    if (skip + n < c.length) {
      const rest = c.subarray(skip + n);
      chunks.splice(0, chunks.length, rest, ...chunks.slice(i + 1));
      return;
    }
    skip = 0;
  }
  chunks.splice(0, i);
}

export interface BrokerLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

const silent: BrokerLogger = { warn: () => undefined, info: () => undefined };

/**
 * The embedded broker's TCP front: 4-byte length-prefixed frames, request header v1
 * (api_key, api_version, correlation_id, client_id), response header v0 (correlation_id).
 * Requests of one connection are handled one at a time, in order, as Kafka does. A frame that
 * cannot be parsed, an unknown API key, an unsupported version (other than ApiVersions) or a
 * frame over the size limit closes the connection, which is also what Kafka does.
 * An unsupported ApiVersions version gets a v0 response with UNSUPPORTED_VERSION and the
 * supported ranges, so clients (librdkafka sends v3 first) can retry with a version we speak.
 */
export class KafkaServer {
  readonly state: BrokerState;
  private server: Server;
  private sockets = new Set<Socket>();
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private readonly credentials: BrokerSaslCredentials | null;
  private readonly apiVersionsList: ReturnType<typeof apiVersionsOf>;

  private constructor(
    options: BrokerOptions & ListenerSecurity,
    private readonly log: BrokerLogger,
  ) {
    this.state = new BrokerState(options);
    this.credentials = options.sasl ? new BrokerSaslCredentials(options.sasl) : null;
    this.apiVersionsList = apiVersionsOf(this.credentials !== null);
    this.server = options.tls
      ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, (socket) =>
          this.onConnection(socket),
        )
      : createServer((socket) => this.onConnection(socket));
    // A client that fails the TLS handshake (an untrusted certificate, plain TCP) is only logged.
    this.server.on('tlsClientError', (err: Error, socket: Socket) =>
      this.log.warn({ remote: `/${socket.remoteAddress}`, reason: err.message }, 'TLS handshake failed'),
    );
  }

  static async start(
    options: BrokerOptions & ListenerSecurity,
    log: BrokerLogger = silent,
  ): Promise<KafkaServer> {
    const server = new KafkaServer(options, log);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(server.state.options.port, server.state.options.host, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    const addr = server.server.address();
    server.state.port = typeof addr === 'object' && addr ? addr.port : 0;
    server.state.warn = (message) => server.log.warn({}, message);
    const flush = server.state.options.flush;
    // A failed fsync takes its partition offline (PartitionLog.flush) and is told through warn.
    if (typeof flush === 'number')
      server.timers.push(
        setInterval(
          () =>
            void server.state.flush().catch((err: Error) => server.state.storageError('flush', err.message)),
          flush,
        ),
      );
    server.timers.push(
      setInterval(() => server.state.topics.clean(), server.state.options.cleanerIntervalMs),
    );
    return server;
  }

  get port(): number {
    return this.state.port;
  }

  /** What each open connection holds: request bytes read and not yet handled, response bytes unsent. */
  connections(): Array<{ remote: string; bufferedIn: number; bufferedOut: number }> {
    return [...this.sockets].map((s) => ({
      remote: `${s.remoteAddress}:${s.remotePort}`,
      bufferedIn: this.held.get(s) ?? 0,
      bufferedOut: s.writableLength,
    }));
  }

  /** Request bytes held per connection (read, not yet handled) and their sum. */
  private held = new Map<Socket, number>();
  private heldTotal = 0;
  /** Connections paused because heldTotal reached maxBufferedBytes; resumed as bytes come back. */
  private starved = new Set<() => void>();

  private hold(socket: Socket, bytes: number): void {
    // A closed connection gave its bytes back at once; its last request may finish after that.
    if (bytes < 0 && !this.held.has(socket)) return;
    this.held.set(socket, (this.held.get(socket) ?? 0) + bytes);
    this.heldTotal += bytes;
    if (bytes < 0 && this.heldTotal < this.state.options.maxBufferedBytes)
      for (const wake of [...this.starved]) wake();
  }

  /**
   * One connection. Requests are handled one at a time, in order, as Kafka does, and the
   * connection is read only while none is in flight and its socket has room for responses: a
   * client that pipelines requests or never reads its responses fills its own TCP window, not the
   * broker's memory. Connections over maxConnections, idle past connectionIdleMs, or that would
   * take the broker's held request bytes past maxBufferedBytes are closed or paused.
   */
  private onConnection(socket: Socket): void {
    const { maxConnections, connectionIdleMs, maxBufferedBytes, maxRequestBytes } = this.state.options;
    if (this.sockets.size >= maxConnections) {
      this.log.warn(
        { remote: socket.remoteAddress, open: this.sockets.size },
        `refusing a connection: ${maxConnections} connections are open (maxConnections)`,
      );
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const client: ClientInfo = { clientId: '', clientHost: `/${socket.remoteAddress ?? 'unknown'}` };
    const sasl = this.credentials ? new SaslSession(this.credentials) : null;
    socket.setTimeout(connectionIdleMs, () => {
      this.log.info({ remote: client.clientHost }, `closing a connection idle for ${connectionIdleMs} ms`);
      socket.destroy();
    });
    // Chunks are kept in a list and joined once a whole frame is there: joining on every chunk
    // would copy a 1 MB produce request about 16 times. A large frame is copied into this
    // connection's spare frame buffer, which a Produce request gives back once handled (nothing
    // keeps a view of a produce request after it: the batches are written to the log), so a
    // producer's requests do not allocate a new buffer each (each large allocation adds to the
    // external memory that makes V8 run a full garbage collection).
    const chunks: Buffer[] = [];
    let buffered = 0;
    let spare: Buffer | null = null;
    let busy = false;
    let starved = false;
    // Fetch responses are read into an arena that is reused once the response is written.
    const arenas: ReadArena[] = [];

    /** Reads on while no request is in flight, the socket has room, and the broker has budget. */
    const flow = () => {
      if (socket.destroyed) return;
      if (busy || socket.writableNeedDrain) return void socket.pause();
      if (this.heldTotal >= maxBufferedBytes) {
        if (!starved) {
          starved = true;
          this.starved.add(wake);
        }
        return void socket.pause();
      }
      socket.resume();
    };
    const wake = () => {
      starved = false;
      this.starved.delete(wake);
      flow();
    };

    /** Takes the next whole frame, if there is one, and handles it; then reads on. */
    const next = () => {
      if (busy || socket.destroyed) return;
      if (socket.writableNeedDrain) return void socket.pause();
      if (buffered < 4) return flow();
      if (chunks[0].length < 4) chunks.splice(0, chunks.length, Buffer.concat(chunks));
      const size = chunks[0].readInt32BE(0);
      if (size < 8 || size > maxRequestBytes) {
        this.log.warn({ remote: client.clientHost, size }, 'closing connection: bad request frame size');
        socket.destroy();
        return;
      }
      if (buffered < 4 + size) return flow();
      let frame: Buffer;
      let pooled: Buffer | null = null;
      if (size >= POOLED_FRAME_BYTES && chunks.length > 1) {
        pooled =
          spare && spare.length >= size ? spare : Buffer.allocUnsafe(Math.max(size, 2 * POOLED_FRAME_BYTES));
        spare = null;
        frame = pooled.subarray(0, size);
        takeFrame(chunks, size, frame);
      } else {
        const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, buffered);
        frame = all.subarray(4, 4 + size);
        const rest = all.subarray(4 + size);
        chunks.length = 0;
        if (rest.length) chunks.push(rest);
      }
      buffered -= 4 + size;
      busy = true;
      socket.pause();
      void this.handleFrame(frame, socket, client, arenas, sasl).finally(() => {
        this.hold(socket, -(4 + size));
        if (pooled && frame.readInt16BE(0) === ApiKey.Produce && (!spare || spare.length < pooled.length))
          spare = pooled;
        busy = false;
        next();
      });
    };

    socket.on('data', (chunk) => {
      chunks.push(chunk);
      buffered += chunk.length;
      this.hold(socket, chunk.length);
      next();
    });
    socket.on('drain', next);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.starved.delete(wake);
      this.hold(socket, -(this.held.get(socket) ?? 0));
      this.held.delete(socket);
    });
  }

  private async handleFrame(
    frame: Buffer,
    socket: Socket,
    client: ClientInfo,
    arenas: ReadArena[],
    sasl: SaslSession | null,
  ): Promise<void> {
    if (socket.destroyed) return;
    let apiKey = -1;
    let version = -1;
    let correlationId = 0;
    try {
      const r = new Reader(frame);
      apiKey = r.int16();
      version = r.int16();
      correlationId = r.int32();
      client.clientId = r.nstring() ?? '';
      const spec = !sasl && SASL_APIS.has(apiKey) ? undefined : API_SPECS.get(apiKey);
      if (!spec) throw new ProtocolError(`unknown API key ${apiKey}`);
      if (sasl && !sasl.authenticated && apiKey !== ApiKey.ApiVersions && !SASL_APIS.has(apiKey)) {
        // Kafka's SaslServerAuthenticator closes such a connection too (IllegalSaslStateException).
        this.log.warn(
          { remote: client.clientHost, clientId: client.clientId, apiKey },
          `closing connection: ${spec.name} before SASL authentication; this broker requires SASL (${BROKER_SASL_MECHANISMS.join(', ')})`,
        );
        socket.destroy();
        return;
      }
      if (version < spec.min || version > spec.max) {
        if (apiKey === ApiKey.ApiVersions)
          return void this.send(socket, correlationId, this.apiVersions(ErrorCode.UNSUPPORTED_VERSION, 0));
        throw new ProtocolError(
          `${spec.name} version ${version} is not supported (${spec.min} to ${spec.max})`,
        );
      }
      const req = readStruct<Req>(r, spec.request, version);
      if (sasl && SASL_APIS.has(apiKey))
        return await this.saslStep(sasl, apiKey, version, correlationId, req, socket, client);
      if (apiKey === ApiKey.Fetch) {
        const arena = arenas.pop() ?? new ReadArena();
        const res = await handleFetch(this.state, req, version, arena);
        if (socket.destroyed) return;
        const written = this.send(socket, correlationId, (w) => writeStruct(w, spec.response, res, version));
        // Two arenas per connection at most: one being written out, one being filled.
        void written.then((ok) => ok && arenas.length < 2 && arenas.push(arena));
        return;
      }
      const res = await this.dispatch(apiKey, version, req, client);
      if (res === null || socket.destroyed) return;
      void this.send(socket, correlationId, (w) => writeStruct(w, spec.response, res, version));
    } catch (err) {
      // A request that does not parse, or bad data in it; anything else (a RangeError too) is a broker bug.
      if (err instanceof ProtocolError || err instanceof DataError) {
        this.log.warn(
          { remote: client.clientHost, apiKey, version, reason: err.message },
          'closing connection: malformed request',
        );
      } else {
        this.log.warn(
          { remote: client.clientHost, apiKey, version, err: String(err) },
          'closing connection: request failed',
        );
      }
      socket.destroy();
    }
  }

  /** SaslHandshake or SaslAuthenticate; a failed authentication closes once its answer is written. */
  private async saslStep(
    sasl: SaslSession,
    apiKey: number,
    version: number,
    correlationId: number,
    req: Req,
    socket: Socket,
    client: ClientInfo,
  ): Promise<void> {
    const spec = API_SPECS.get(apiKey)!;
    // Handshake v0 is followed by unframed tokens, which this broker does not read.
    const res: Req =
      apiKey === ApiKey.SaslHandshake && version === 0
        ? {
            errorCode: ErrorCode.ILLEGAL_SASL_STATE,
            mechanisms: [],
            errorMessage: 'SaslHandshake v0 (unframed tokens) is not supported: use v1',
            close: true,
          }
        : apiKey === ApiKey.SaslHandshake
          ? { ...sasl.handshake(String(req.mechanism)), close: false }
          : { ...sasl.authenticate(req.authBytes as Buffer), sessionLifetimeMs: 0n };
    const written = this.send(socket, correlationId, (w) => writeStruct(w, spec.response, res, version));
    if (res.errorCode !== 0)
      this.log.warn(
        {
          remote: client.clientHost,
          clientId: client.clientId,
          reason: res.errorMessage ?? `mechanism ${String(req.mechanism)} is not offered`,
        },
        `${spec.name} refused`,
      );
    if (res.close) {
      await written;
      socket.destroy();
    }
  }

  /**
   * Writes one response frame. Record batches of 4 KiB and more (fetch responses) are written
   * from the buffers the log was read into, not copied into the frame. Resolves once the socket
   * has written the frame out (true) or failed to (false): only then may those buffers be reused.
   */
  private send(socket: Socket, correlationId: number, body: (w: Writer) => void): Promise<boolean> {
    const parts = encodeResponseFrame(correlationId, body);
    return new Promise((resolve) => {
      const done = (err?: Error | null) => resolve(!err);
      if (parts.length === 1) {
        socket.write(parts[0], done);
        return;
      }
      socket.cork();
      parts.forEach((p, i) => (i === parts.length - 1 ? socket.write(p, done) : socket.write(p)));
      socket.uncork();
    });
  }

  private apiVersions(errorCode: number, version: number): (w: Writer) => void {
    const spec = API_SPECS.get(ApiKey.ApiVersions)!;
    const res = {
      errorCode,
      apiKeys: this.apiVersionsList,
      throttleTimeMs: 0,
    };
    return (w) => writeStruct(w, spec.response, res, version);
  }

  private async dispatch(apiKey: number, version: number, req: Req, client: ClientInfo): Promise<Req | null> {
    const s = this.state;
    switch (apiKey) {
      case ApiKey.ApiVersions:
        return { errorCode: 0, apiKeys: this.apiVersionsList, throttleTimeMs: 0 };
      case ApiKey.Metadata:
        return handleMetadata(s, req, version);
      case ApiKey.Produce:
        return handleProduce(s, req);
      // Fetch is handled in handleFrame, which gives it a read arena.
      case ApiKey.ListOffsets:
        return handleListOffsets(s, req);
      case ApiKey.DeleteRecords:
        return handleDeleteRecords(s, req);
      case ApiKey.CreateTopics:
        return handleCreateTopics(s, req);
      case ApiKey.DeleteTopics:
        return handleDeleteTopics(s, req);
      case ApiKey.CreatePartitions:
        return handleCreatePartitions(s, req);
      case ApiKey.DescribeConfigs:
        return handleDescribeConfigs(s, req, version);
      case ApiKey.InitProducerId:
        return handleInitProducerId(s, req);
      case ApiKey.FindCoordinator:
        return handleFindCoordinator(s, req);
      case ApiKey.JoinGroup:
        return handleJoinGroup(s, req, version, client);
      case ApiKey.SyncGroup:
        return handleSyncGroup(s, req);
      case ApiKey.Heartbeat:
        return handleHeartbeat(s, req);
      case ApiKey.LeaveGroup:
        return handleLeaveGroup(s, req, version);
      case ApiKey.OffsetCommit:
        return handleOffsetCommit(s, req);
      case ApiKey.OffsetFetch:
        return handleOffsetFetch(s, req);
      case ApiKey.DescribeGroups:
        return handleDescribeGroups(s, req);
      case ApiKey.ListGroups:
        return handleListGroups(s);
      default:
        throw new ProtocolError(`unknown API key ${apiKey}`);
    }
  }

  /** Stops accepting, drops connections, flushes and closes every file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.state.flush().catch(() => undefined);
    this.state.close();
  }
}
