import { arr, f, narr } from './schema-codec';
import { ApiKey, type ApiSpec, i32arr } from './api-spec';

/** Writing and reading records: Produce, Fetch, and the idempotent producer's id. */

export const PRODUCE: ApiSpec = {
  key: ApiKey.Produce,
  name: 'Produce',
  min: 3,
  max: 8,
  request: [
    f('transactionalId', 'nstring', 3),
    f('acks', 'int16'),
    f('timeoutMs', 'int32'),
    f(
      'topicData',
      arr([f('name', 'string'), f('partitionData', arr([f('index', 'int32'), f('records', 'nbytes')]))]),
    ),
  ],
  response: [
    f(
      'responses',
      arr([
        f('name', 'string'),
        f(
          'partitionResponses',
          arr([
            f('index', 'int32'),
            f('errorCode', 'int16'),
            f('baseOffset', 'int64'),
            f('logAppendTimeMs', 'int64', 2),
            f('logStartOffset', 'int64', 5),
            f('recordErrors', arr([f('batchIndex', 'int32'), f('batchIndexErrorMessage', 'nstring')]), 8),
            f('errorMessage', 'nstring', 8),
          ]),
        ),
      ]),
    ),
    f('throttleTimeMs', 'int32', 1),
  ],
};

export const FETCH: ApiSpec = {
  key: ApiKey.Fetch,
  name: 'Fetch',
  min: 4,
  max: 11,
  request: [
    f('replicaId', 'int32'),
    f('maxWaitMs', 'int32'),
    f('minBytes', 'int32'),
    f('maxBytes', 'int32', 3),
    f('isolationLevel', 'int8', 4),
    f('sessionId', 'int32', 7),
    f('sessionEpoch', 'int32', 7),
    f(
      'topics',
      arr([
        f('topic', 'string'),
        f(
          'partitions',
          arr([
            f('partition', 'int32'),
            f('currentLeaderEpoch', 'int32', 9),
            f('fetchOffset', 'int64'),
            f('logStartOffset', 'int64', 5),
            f('partitionMaxBytes', 'int32'),
          ]),
        ),
      ]),
    ),
    f('forgottenTopicsData', arr([f('topic', 'string'), f('partitions', i32arr)]), 7),
    f('rackId', 'string', 11),
  ],
  response: [
    f('throttleTimeMs', 'int32', 1),
    f('errorCode', 'int16', 7),
    f('sessionId', 'int32', 7),
    f(
      'responses',
      arr([
        f('topic', 'string'),
        f(
          'partitions',
          arr([
            f('partitionIndex', 'int32'),
            f('errorCode', 'int16'),
            f('highWatermark', 'int64'),
            f('lastStableOffset', 'int64', 4),
            f('logStartOffset', 'int64', 5),
            f('abortedTransactions', narr([f('producerId', 'int64'), f('firstOffset', 'int64')]), 4),
            f('preferredReadReplica', 'int32', 11),
            f('records', 'nbytes'),
          ]),
        ),
      ]),
    ),
  ],
};

export const INIT_PRODUCER_ID: ApiSpec = {
  key: ApiKey.InitProducerId,
  name: 'InitProducerId',
  min: 0,
  max: 1,
  request: [f('transactionalId', 'nstring'), f('transactionTimeoutMs', 'int32')],
  response: [
    f('throttleTimeMs', 'int32'),
    f('errorCode', 'int16'),
    f('producerId', 'int64'),
    f('producerEpoch', 'int16'),
  ],
};
