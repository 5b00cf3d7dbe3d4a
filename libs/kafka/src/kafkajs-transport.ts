import type { Kafka, PartitionMetadata } from 'kafkajs';
import {
  decodeFetchResponse,
  encodeFetchRequest,
  FETCH_API_KEY,
  FETCH_VERSION,
  type FetchedPartition,
  type FetchLimits,
  type FetchPartition,
  decodeProduceResponse,
  encodeProduceFrame,
  encodeProduceRequest,
  PRODUCE_API_KEY,
  type BatchSource,
  type PartitionBatch,
  type PartitionResult,
} from '@pgferry/kafka-protocol';

/**
 * The parts of kafkajs 2.2 below its public API that the raw produce path uses, in one place:
 * the cluster (metadata, leaders, connected brokers with TLS and SASL done) and a broker's
 * request sender. Everything here is checked when first used, so a kafkajs upgrade that moves
 * them fails with this file's message instead of misbehaving.
 */

export interface KafkaJsBroker {
  nodeId: number | string | null;
  disconnect(): Promise<void>;
  /** apiKey -> versions the broker supports; set once the broker is connected. */
  versions: Record<number, { minVersion: number; maxVersion: number }> | null;
  initProducerId(request: {
    transactionalId?: string;
    transactionTimeout: number;
  }): Promise<{ producerId: string; producerEpoch: number }>;
}

export interface KafkaJsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  refreshMetadata(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  findTopicPartitionMetadata(topic: string): PartitionMetadata[];
  findBroker(where: { nodeId: string }): Promise<KafkaJsBroker>;
  findControllerBroker(): Promise<KafkaJsBroker>;
}

/** A request as kafkajs' Connection#send takes it: encode() returns an Encoder-like object. */
export interface KafkaJsProtocolRequest<T> {
  request: {
    apiKey: number;
    apiVersion: number;
    apiName: string;
    expectResponse: () => boolean;
    encode: () => Promise<{ buf: Buffer; buffer: Buffer }>;
  };
  response: { decode: (payload: Buffer) => Promise<T>; parse: (data: T) => Promise<T> };
}

class KafkaJsInternalsError extends Error {
  constructor(what: string) {
    super(`kafkajs internals changed (${what}); pgferry's raw producer needs kafkajs 2.2`);
    this.name = 'KafkaJsInternalsError';
  }
}

function symbolNamed(target: object, description: string): symbol {
  const found = Object.getOwnPropertySymbols(target).find((s) => s.description === description);
  if (!found) throw new KafkaJsInternalsError(`no ${description}`);
  return found;
}

/**
 * A new kafkajs cluster with the client's brokers, TLS, SASL, timeouts and retry settings, as
 * kafka.producer() creates for itself. Nothing is connected yet.
 */
export function createCluster(kafka: Kafka, options: { metadataMaxAge?: number } = {}): KafkaJsCluster {
  const create = (kafka as unknown as Record<symbol, unknown>)[
    symbolNamed(kafka, 'private:Kafka:createCluster')
  ];
  if (typeof create !== 'function') throw new KafkaJsInternalsError('createCluster is not a function');
  return create({
    metadataMaxAge: options.metadataMaxAge ?? 300_000,
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    instrumentationEmitter: null,
  }) as KafkaJsCluster;
}

/**
 * Sends a request on the broker's connection the way the broker's own methods do (a closed
 * connection disconnects the broker, so the next findBroker reconnects). Rejects with kafkajs'
 * errors (KafkaJSConnectionError, KafkaJSRequestTimeoutError, ...), which carry `retriable`.
 */
export function sendRequest<T>(broker: KafkaJsBroker, request: KafkaJsProtocolRequest<T>): Promise<T> {
  const proto = Object.getPrototypeOf(broker) as object;
  const send = (proto as Record<symbol, unknown>)[symbolNamed(proto, 'private:Broker:sendRequest')];
  if (typeof send !== 'function') throw new KafkaJsInternalsError('sendRequest is not a function');
  return (send as (r: KafkaJsProtocolRequest<T>) => Promise<T>).call(broker, request);
}

/**
 * A request that writes its own frame (size, request header, body) for the correlation id and
 * client id of the connection it goes on, so that it is not copied twice more by kafkajs' request
 * encoder (which grows zero-filled buffers to the next power of two for each copy).
 */
export interface FramedRequest<T> {
  apiKey: number;
  apiVersion: number;
  apiName: string;
  frame(correlationId: number, clientId: string | null): Buffer;
  decode(payload: Buffer): T;
  /** The request through kafkajs' encoding: for a connection that must (re)authenticate first. */
  fallback(): KafkaJsProtocolRequest<T>;
}

/** kafkajs 2.2's Connection, in the calls sendFramed makes (what its own send() does). */
interface KafkaJsConnection {
  clientId: string | null;
  /** SASL options, or null: then the connection has nothing to authenticate. */
  sasl: unknown;
  socket: { write(buf: Buffer): unknown } | null;
  isAuthenticated(): boolean;
  failIfNotConnected(): void;
  nextCorrelationId(): number;
  requestQueue: {
    push(request: {
      entry: {
        apiKey: number;
        apiName: string;
        apiVersion: number;
        correlationId: number;
        resolve: (r: { payload: Buffer }) => void;
        reject: (err: unknown) => void;
      };
      expectResponse: boolean;
      requestTimeout: number | null;
      sendRequest: () => void;
    }): void;
  };
}

function connectionOf(broker: KafkaJsBroker): Promise<KafkaJsConnection> {
  const pool = (broker as unknown as { connectionPool?: { getConnection?: (i: number) => Promise<unknown> } })
    .connectionPool;
  if (typeof pool?.getConnection !== 'function')
    throw new KafkaJsInternalsError('no connectionPool.getConnection');
  // Connection 0 of the pool carries every request but Fetch (ConnectionPool.getConnectionByRequest).
  return pool.getConnection(0) as Promise<KafkaJsConnection>;
}

/**
 * Sends a FramedRequest the way kafkajs' Connection#send sends a request (the connection's
 * request queue: in-flight limit, timeouts, correlation of the response), and Broker's
 * sendRequest handles a closed connection (the broker is disconnected, so the next findBroker
 * reconnects). Rejects with kafkajs' errors, which carry `retriable`.
 */
export async function sendFramed<T>(broker: KafkaJsBroker, request: FramedRequest<T>): Promise<T> {
  const connection = await connectionOf(broker);
  for (const m of ['isAuthenticated', 'failIfNotConnected', 'nextCorrelationId'] as const)
    if (typeof connection[m] !== 'function') throw new KafkaJsInternalsError(`no Connection#${m}`);
  if (typeof connection.requestQueue?.push !== 'function')
    throw new KafkaJsInternalsError('no Connection#requestQueue.push');
  // A SASL session not (or no longer) authenticated: kafkajs' send authenticates first.
  if (connection.sasl && !connection.isAuthenticated()) return sendRequest(broker, request.fallback());
  try {
    connection.failIfNotConnected();
    const correlationId = connection.nextCorrelationId();
    const frame = request.frame(correlationId, connection.clientId);
    const { payload } = await new Promise<{ payload: Buffer }>((resolve, reject) => {
      connection.requestQueue.push({
        entry: {
          apiKey: request.apiKey,
          apiName: request.apiName,
          apiVersion: request.apiVersion,
          correlationId,
          resolve,
          reject,
        },
        expectResponse: true,
        requestTimeout: null,
        sendRequest: () => {
          connection.socket!.write(frame);
        },
      });
    });
    return request.decode(payload);
  } catch (err) {
    if ((err as Error).name === 'KafkaJSConnectionClosedError') await broker.disconnect();
    throw err;
  }
}

export interface KafkaErrorCode {
  type: string;
  code: number;
  retriable: boolean;
  message: string;
}

let errorTable: Map<number, KafkaErrorCode> | null = null;

/** Kafka's error code as kafkajs knows it: name, whether retrying can help, and its text. */
export function kafkaErrorCode(code: number): KafkaErrorCode {
  if (!errorTable) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { errorCodes } = require('kafkajs/src/protocol/error') as { errorCodes?: KafkaErrorCode[] };
    if (!Array.isArray(errorCodes)) throw new KafkaJsInternalsError('no protocol errorCodes');
    errorTable = new Map(errorCodes.map((e) => [e.code, e]));
  }
  return (
    errorTable.get(code) ?? {
      type: 'UNKNOWN_ERROR_CODE',
      code,
      retriable: false,
      message: `unknown Kafka error code ${code}`,
    }
  );
}

/** The request object kafkajs' connection sends: our bytes, our decoder. */
export function fetchRequest(
  limits: FetchLimits,
  topics: ReadonlyMap<string, FetchPartition[]>,
): KafkaJsProtocolRequest<Map<string, FetchedPartition[]>> {
  return {
    request: {
      apiKey: FETCH_API_KEY,
      apiVersion: FETCH_VERSION,
      apiName: 'Fetch',
      expectResponse: () => true,
      encode: async () => {
        const buf = encodeFetchRequest(limits, topics);
        return { buf, buffer: buf };
      },
    },
    response: {
      decode: async (payload) => decodeFetchResponse(payload),
      parse: async (data) => data,
    },
  };
}

/** The request object kafkajs' connection sends: our bytes, our decoder; errors stay per partition. */
export function produceRequest(
  version: number,
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly PartitionBatch[],
): KafkaJsProtocolRequest<Map<string, PartitionResult[]>> {
  return {
    request: {
      apiKey: PRODUCE_API_KEY,
      apiVersion: version,
      apiName: 'Produce',
      expectResponse: () => acks !== 0,
      encode: async () => {
        const buf = encodeProduceRequest(acks, timeoutMs, topic, batches);
        return { buf, buffer: buf };
      },
    },
    response: {
      decode: async (payload) => decodeProduceResponse(payload, version),
      parse: async (data) => data,
    },
  };
}

/**
 * The same request as produceRequest, for sendFramed: written straight into its frame, batches
 * in place; kafkajs' own encoding (produceRequest) only for a connection not yet authenticated.
 */
export function produceFramed(
  version: number,
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly BatchSource[],
  allocate?: (bytes: number) => Buffer,
): FramedRequest<Map<string, PartitionResult[]>> {
  return {
    apiKey: PRODUCE_API_KEY,
    apiVersion: version,
    apiName: 'Produce',
    frame: (correlationId, clientId) =>
      encodeProduceFrame(version, correlationId, clientId, acks, timeoutMs, topic, batches, allocate),
    decode: (payload) => decodeProduceResponse(payload, version),
    fallback: () =>
      produceRequest(
        version,
        acks,
        timeoutMs,
        topic,
        batches.map((b) => {
          const batch = Buffer.allocUnsafe(b.bytes);
          b.writeInto(batch, 0);
          return { partition: b.partition, batch };
        }),
      ),
  };
}
