import {
  AuthenticationError,
  ConnectionError,
  DataError,
  isProgrammingError,
  ObjectError,
  PermissionError,
  PgferryError,
} from '@pgferry/core';
import { kafkaErrorCode, ProtocolError } from '@pgferry/kafka-protocol';

/**
 * Kafka errors become pgferry's typed errors here, once, at the Kafka boundary (the connection,
 * the producer, the fetcher, the admin calls): an error code in a response, or a socket, TLS or
 * protocol failure. Everything above sees PgferryErrors whose `retriable` says whether waiting
 * and sending again can help, whose `code` names the Kafka error, and whose message names the
 * topic, partition or broker and what to do.
 */

/** A Kafka error code answered by a broker; `kafkaCode` is the number, `code` its name. */
export class KafkaError extends PgferryError {
  constructor(
    message: string,
    readonly kafkaCode: number,
    retriable: boolean,
  ) {
    super(message, {
      retriable,
      code: kafkaErrorCode(kafkaCode).name,
      connectionLoss: retriable && BROKER_AWAY.has(kafkaCode),
    });
  }
}

/**
 * What a cluster answers while a broker restarts or is cut off: its partitions have no leader
 * or another, its group coordinator moves, requests time out. Connection losses, retried within
 * retry.connectionMinutes like a dropped connection, not as other retriable errors. LEADER_NOT_AVAILABLE,
 * NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, BROKER_NOT_AVAILABLE, NETWORK_EXCEPTION,
 * COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, NOT_ENOUGH_REPLICAS,
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND, KAFKA_STORAGE_ERROR (a log dir offline), FENCED_LEADER_EPOCH,
 * UNKNOWN_LEADER_EPOCH, OFFSET_NOT_AVAILABLE (a new leader not caught up yet).
 */
const BROKER_AWAY = new Set([5, 6, 7, 8, 13, 14, 15, 16, 19, 20, 56, 74, 75, 78]);

const PERMISSION = new Set([29, 30, 31, 53]); // TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED
const AUTHENTICATION = new Set([33, 34, 58]); // UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED
const BAD_DATA = new Set([2, 10, 18, 32, 87]); // CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, INVALID_TIMESTAMP, INVALID_RECORD

/**
 * The error for Kafka error `code` answered to `context` (e.g. "producing to Kafka topic t
 * partition 2"), with the broker's own text when it sent one. Authorization failures are
 * PermissionErrors, SASL failures AuthenticationErrors, records the broker refuses DataErrors
 * (never retried: the same bytes would be refused again; onError dead-letter can take them),
 * the rest KafkaErrors, retriable as Kafka says.
 */
export function kafkaError(code: number, context: string, brokerMessage?: string | null): PgferryError {
  const e = kafkaErrorCode(code);
  const text = `${context}: ${e.name}: ${brokerMessage || e.message}`;
  if (PERMISSION.has(code))
    return new PermissionError(`${text}; grant the principal pgferry connects as the ACL it needs`, {
      code: e.name,
    });
  if (AUTHENTICATION.has(code)) return new AuthenticationError(text, { code: e.name });
  if (code === 10 || code === 18)
    return new DataError(
      `${text}; raise the topic's max.message.bytes (and the broker's message.max.bytes) above the largest record`,
      { code: e.name },
    );
  if (BAD_DATA.has(code)) return new DataError(text, { code: e.name });
  return new KafkaError(text, code, e.retriable);
}

/** Node's error codes of a connection that failed or dropped: worth connecting again. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_DESTROYED',
]);

/** TLS errors that no retry mends: the certificate or its name is wrong. */
function isTlsFailure(code: string): boolean {
  return (
    code.startsWith('ERR_TLS_') ||
    code.startsWith('ERR_SSL_') ||
    code.startsWith('CERT_') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
  );
}

/**
 * Any error from talking to Kafka, as a PgferryError naming `context`. PgferryErrors pass as
 * they are; programming errors (TypeError, RangeError, ...) are rethrown untouched by callers
 * and pass here unchanged too; a dropped or refused connection is a ConnectionError
 * (retriable); a TLS failure an AuthenticationError naming the TLS options; a response that
 * does not parse a ConnectionError (the connection is dropped and opened again).
 */
export function classifyKafkaError(err: unknown, context: string): Error {
  if (err instanceof PgferryError || isProgrammingError(err)) return err as Error;
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ProtocolError)
    return new ConnectionError(`${context}: the broker's response does not parse (${message})`, {
      cause: err,
    });
  if (typeof code === 'string' && NETWORK_CODES.has(code))
    return new ConnectionError(`${context}: ${message}`, { cause: err, code });
  if (typeof code === 'string' && isTlsFailure(code))
    return new AuthenticationError(
      `${context}: TLS: ${message}; check kafka.tls (ca, serverName) against the broker's certificate`,
      { cause: err, code },
    );
  return new PgferryError(`${context}: ${message}`, { cause: err });
}

/** A topic the cluster does not have. */
export function missingTopic(topic: string): ObjectError {
  return new ObjectError(
    `Kafka topic ${topic} does not exist: create the task's topics first (pgferry migrate does), or check kafka.topicPrefix`,
    { code: 'UNKNOWN_TOPIC_OR_PARTITION' },
  );
}
