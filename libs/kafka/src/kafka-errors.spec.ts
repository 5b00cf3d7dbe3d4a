import {
  AuthenticationError,
  ConnectionError,
  DataError,
  isConnectionLoss,
  ObjectError,
  PermissionError,
  PgferryError,
} from '@pgferry/core';
import { ProtocolError } from '@pgferry/kafka-protocol';
import { classifyKafkaError, KafkaError, kafkaError } from './kafka-errors';

const where = 'producing to Kafka topic t partition 3';

describe('kafkaError: a Kafka error code as a typed error', () => {
  it.each([
    [6, KafkaError, true, 'NOT_LEADER_OR_FOLLOWER'],
    [7, KafkaError, true, 'REQUEST_TIMED_OUT'],
    [13, KafkaError, true, 'NETWORK_EXCEPTION'],
    [15, KafkaError, true, 'COORDINATOR_NOT_AVAILABLE'],
    [19, KafkaError, true, 'NOT_ENOUGH_REPLICAS'],
    [56, KafkaError, true, 'KAFKA_STORAGE_ERROR'],
    [3, KafkaError, true, 'UNKNOWN_TOPIC_OR_PARTITION'],
    [1, KafkaError, false, 'OFFSET_OUT_OF_RANGE'],
    [45, KafkaError, false, 'OUT_OF_ORDER_SEQUENCE_NUMBER'],
    [47, KafkaError, false, 'INVALID_PRODUCER_EPOCH'],
    [29, PermissionError, false, 'TOPIC_AUTHORIZATION_FAILED'],
    [30, PermissionError, false, 'GROUP_AUTHORIZATION_FAILED'],
    [31, PermissionError, false, 'CLUSTER_AUTHORIZATION_FAILED'],
    [58, AuthenticationError, false, 'SASL_AUTHENTICATION_FAILED'],
    [33, AuthenticationError, false, 'UNSUPPORTED_SASL_MECHANISM'],
    [10, DataError, false, 'MESSAGE_TOO_LARGE'],
    [87, DataError, false, 'INVALID_RECORD'],
    [2, DataError, false, 'CORRUPT_MESSAGE'],
    [999, KafkaError, false, 'KAFKA_ERROR_999'],
  ])('code %d is a %p, retriable %p, named %s', (code, type, retriable, name) => {
    const e = kafkaError(code, where);
    expect(e).toBeInstanceOf(type);
    expect(e.retriable).toBe(retriable);
    expect(e.code).toBe(name);
    expect(e.message.startsWith(`${where}: ${name}: `)).toBe(true);
  });

  it.each([
    [6, true],
    [5, true],
    [7, true],
    [13, true],
    [15, true],
    [16, true],
    [3, false],
    [1, false],
    [29, false],
  ])(
    'code %d is a connection loss (a broker away, retried within retry.connectionMinutes): %p',
    (code, lost) => {
      expect(isConnectionLoss(kafkaError(code, where))).toBe(lost);
    },
  );

  it("keeps the broker's own text, and says how to fix a record too large", () => {
    expect(kafkaError(44, where, 'no topics named x').message).toBe(
      `${where}: POLICY_VIOLATION: no topics named x`,
    );
    expect(kafkaError(10, where).message).toMatch(/raise the topic's max\.message\.bytes/);
    expect(kafkaError(29, where).message).toMatch(
      /grant the principal pgferry connects as the ACL it needs$/,
    );
  });
});

describe('classifyKafkaError: anything from talking to Kafka', () => {
  const sys = (code: string, message = `connect ${code} 127.0.0.1:9092`) =>
    Object.assign(new Error(message), { code });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])(
    '%s is a retriable ConnectionError naming where',
    (code) => {
      const e = classifyKafkaError(sys(code), 'connecting to Kafka broker 1 (h:9092)') as PgferryError;
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.retriable).toBe(true);
      expect(e.message).toBe(`connecting to Kafka broker 1 (h:9092): connect ${code} 127.0.0.1:9092`);
    },
  );

  it.each([
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'CERT_HAS_EXPIRED',
    'ERR_SSL_WRONG_VERSION_NUMBER',
  ])('TLS failure %s is a fatal AuthenticationError pointing at the TLS options', (code) => {
    const e = classifyKafkaError(sys(code, 'bad certificate'), 'connecting to x') as PgferryError;
    expect(e).toBeInstanceOf(AuthenticationError);
    expect(e.retriable).toBe(false);
    expect(e.message).toMatch(/check kafka\.tls/);
  });

  it('a response that does not parse drops the connection: retriable', () => {
    const e = classifyKafkaError(
      new ProtocolError('truncated'),
      'reading the Fetch response',
    ) as PgferryError;
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/does not parse \(truncated\)/);
  });

  it('passes PgferryErrors and programming errors through, and wraps the rest as fatal', () => {
    const typed = new ObjectError('missing');
    expect(classifyKafkaError(typed, where)).toBe(typed);
    const bug = new TypeError('x is undefined');
    expect(classifyKafkaError(bug, where)).toBe(bug);
    const other = classifyKafkaError(new Error('odd'), where) as PgferryError;
    expect(other).toBeInstanceOf(PgferryError);
    expect(other.retriable).toBe(false);
    expect(other.message).toBe(`${where}: odd`);
  });
});
