import { arr, f, narr, type Field } from './schema-codec';

/**
 * Request and response layouts of every API the broker implements, non-flexible versions only
 * (flexible versions use compact encodings and tagged fields; every client falls back to the
 * highest version both sides support, and ApiVersions tells them which).
 * Source of the facts: apache/kafka clients/src/main/resources/common/message/<Name>Request.json
 * and <Name>Response.json.
 */
export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  DeleteRecords: 21,
  InitProducerId: 22,
  DescribeConfigs: 32,
  SaslAuthenticate: 36,
  CreatePartitions: 37,
} as const;

export interface ApiSpec {
  key: number;
  name: string;
  min: number;
  max: number;
  request: Field[];
  response: Field[];
}

const i32arr = arr('int32');

const specs: ApiSpec[] = [
  {
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
  },
  {
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
  },
  {
    key: ApiKey.ListOffsets,
    name: 'ListOffsets',
    min: 1,
    max: 5,
    request: [
      f('replicaId', 'int32'),
      f('isolationLevel', 'int8', 2),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f(
            'partitions',
            arr([f('partitionIndex', 'int32'), f('currentLeaderEpoch', 'int32', 4), f('timestamp', 'int64')]),
          ),
        ]),
      ),
    ],
    response: [
      f('throttleTimeMs', 'int32', 2),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f(
            'partitions',
            arr([
              f('partitionIndex', 'int32'),
              f('errorCode', 'int16'),
              f('timestamp', 'int64'),
              f('offset', 'int64'),
              f('leaderEpoch', 'int32', 4),
            ]),
          ),
        ]),
      ),
    ],
  },
  {
    key: ApiKey.Metadata,
    name: 'Metadata',
    min: 0,
    max: 8,
    request: [
      f('topics', narr([f('name', 'string')])),
      f('allowAutoTopicCreation', 'bool', 4),
      f('includeClusterAuthorizedOperations', 'bool', 8),
      f('includeTopicAuthorizedOperations', 'bool', 8),
    ],
    response: [
      f('throttleTimeMs', 'int32', 3),
      f(
        'brokers',
        arr([f('nodeId', 'int32'), f('host', 'string'), f('port', 'int32'), f('rack', 'nstring', 1)]),
      ),
      f('clusterId', 'nstring', 2),
      f('controllerId', 'int32', 1),
      f(
        'topics',
        arr([
          f('errorCode', 'int16'),
          f('name', 'string'),
          f('isInternal', 'bool', 1),
          f(
            'partitions',
            arr([
              f('errorCode', 'int16'),
              f('partitionIndex', 'int32'),
              f('leaderId', 'int32'),
              f('leaderEpoch', 'int32', 7),
              f('replicaNodes', i32arr),
              f('isrNodes', i32arr),
              f('offlineReplicas', i32arr, 5),
            ]),
          ),
          f('topicAuthorizedOperations', 'int32', 8),
        ]),
      ),
      f('clusterAuthorizedOperations', 'int32', 8),
    ],
  },
  {
    key: ApiKey.OffsetCommit,
    name: 'OffsetCommit',
    min: 2,
    max: 7,
    request: [
      f('groupId', 'string'),
      f('generationId', 'int32', 1),
      f('memberId', 'string', 1),
      f('groupInstanceId', 'nstring', 7),
      f('retentionTimeMs', 'int64', 2, 4),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f(
            'partitions',
            arr([
              f('partitionIndex', 'int32'),
              f('committedOffset', 'int64'),
              f('committedLeaderEpoch', 'int32', 6),
              f('committedMetadata', 'nstring'),
            ]),
          ),
        ]),
      ),
    ],
    response: [
      f('throttleTimeMs', 'int32', 3),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f('partitions', arr([f('partitionIndex', 'int32'), f('errorCode', 'int16')])),
        ]),
      ),
    ],
  },
  {
    key: ApiKey.OffsetFetch,
    name: 'OffsetFetch',
    min: 1,
    max: 5,
    request: [
      f('groupId', 'string'),
      f('topics', narr([f('name', 'string'), f('partitionIndexes', i32arr)])),
    ],
    response: [
      f('throttleTimeMs', 'int32', 3),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f(
            'partitions',
            arr([
              f('partitionIndex', 'int32'),
              f('committedOffset', 'int64'),
              f('committedLeaderEpoch', 'int32', 5),
              f('metadata', 'nstring'),
              f('errorCode', 'int16'),
            ]),
          ),
        ]),
      ),
      f('errorCode', 'int16', 2),
    ],
  },
  {
    key: ApiKey.FindCoordinator,
    name: 'FindCoordinator',
    min: 0,
    max: 2,
    request: [f('key', 'string'), f('keyType', 'int8', 1)],
    response: [
      f('throttleTimeMs', 'int32', 1),
      f('errorCode', 'int16'),
      f('errorMessage', 'nstring', 1),
      f('nodeId', 'int32'),
      f('host', 'string'),
      f('port', 'int32'),
    ],
  },
  {
    key: ApiKey.JoinGroup,
    name: 'JoinGroup',
    min: 0,
    max: 5,
    request: [
      f('groupId', 'string'),
      f('sessionTimeoutMs', 'int32'),
      f('rebalanceTimeoutMs', 'int32', 1),
      f('memberId', 'string'),
      f('groupInstanceId', 'nstring', 5),
      f('protocolType', 'string'),
      f('protocols', arr([f('name', 'string'), f('metadata', 'bytes')])),
    ],
    response: [
      f('throttleTimeMs', 'int32', 2),
      f('errorCode', 'int16'),
      f('generationId', 'int32'),
      f('protocolName', 'string'),
      f('leader', 'string'),
      f('memberId', 'string'),
      f(
        'members',
        arr([f('memberId', 'string'), f('groupInstanceId', 'nstring', 5), f('metadata', 'bytes')]),
      ),
    ],
  },
  {
    key: ApiKey.Heartbeat,
    name: 'Heartbeat',
    min: 0,
    max: 3,
    request: [
      f('groupId', 'string'),
      f('generationId', 'int32'),
      f('memberId', 'string'),
      f('groupInstanceId', 'nstring', 3),
    ],
    response: [f('throttleTimeMs', 'int32', 1), f('errorCode', 'int16')],
  },
  {
    key: ApiKey.LeaveGroup,
    name: 'LeaveGroup',
    min: 0,
    max: 3,
    request: [
      f('groupId', 'string'),
      f('memberId', 'string', 0, 2),
      f('members', arr([f('memberId', 'string'), f('groupInstanceId', 'nstring')]), 3),
    ],
    response: [
      f('throttleTimeMs', 'int32', 1),
      f('errorCode', 'int16'),
      f(
        'members',
        arr([f('memberId', 'string'), f('groupInstanceId', 'nstring'), f('errorCode', 'int16')]),
        3,
      ),
    ],
  },
  {
    key: ApiKey.SyncGroup,
    name: 'SyncGroup',
    min: 0,
    max: 3,
    request: [
      f('groupId', 'string'),
      f('generationId', 'int32'),
      f('memberId', 'string'),
      f('groupInstanceId', 'nstring', 3),
      f('assignments', arr([f('memberId', 'string'), f('assignment', 'bytes')])),
    ],
    response: [f('throttleTimeMs', 'int32', 1), f('errorCode', 'int16'), f('assignment', 'bytes')],
  },
  {
    key: ApiKey.DescribeGroups,
    name: 'DescribeGroups',
    min: 0,
    max: 4,
    request: [f('groups', arr('string')), f('includeAuthorizedOperations', 'bool', 3)],
    response: [
      f('throttleTimeMs', 'int32', 1),
      f(
        'groups',
        arr([
          f('errorCode', 'int16'),
          f('groupId', 'string'),
          f('groupState', 'string'),
          f('protocolType', 'string'),
          f('protocolData', 'string'),
          f(
            'members',
            arr([
              f('memberId', 'string'),
              f('groupInstanceId', 'nstring', 4),
              f('clientId', 'string'),
              f('clientHost', 'string'),
              f('memberMetadata', 'bytes'),
              f('memberAssignment', 'bytes'),
            ]),
          ),
          f('authorizedOperations', 'int32', 3),
        ]),
      ),
    ],
  },
  {
    key: ApiKey.ListGroups,
    name: 'ListGroups',
    min: 0,
    max: 2,
    request: [],
    response: [
      f('throttleTimeMs', 'int32', 1),
      f('errorCode', 'int16'),
      f('groups', arr([f('groupId', 'string'), f('protocolType', 'string')])),
    ],
  },
  {
    key: ApiKey.ApiVersions,
    name: 'ApiVersions',
    min: 0,
    max: 2,
    request: [],
    response: [
      f('errorCode', 'int16'),
      f('apiKeys', arr([f('apiKey', 'int16'), f('minVersion', 'int16'), f('maxVersion', 'int16')])),
      f('throttleTimeMs', 'int32', 1),
    ],
  },
  {
    key: ApiKey.CreateTopics,
    name: 'CreateTopics',
    min: 0,
    max: 4,
    request: [
      f(
        'topics',
        arr([
          f('name', 'string'),
          f('numPartitions', 'int32'),
          f('replicationFactor', 'int16'),
          f('assignments', arr([f('partitionIndex', 'int32'), f('brokerIds', i32arr)])),
          f('configs', arr([f('name', 'string'), f('value', 'nstring')])),
        ]),
      ),
      f('timeoutMs', 'int32'),
      f('validateOnly', 'bool', 1),
    ],
    response: [
      f('throttleTimeMs', 'int32', 2),
      f('topics', arr([f('name', 'string'), f('errorCode', 'int16'), f('errorMessage', 'nstring', 1)])),
    ],
  },
  {
    key: ApiKey.DeleteTopics,
    name: 'DeleteTopics',
    min: 0,
    max: 3,
    request: [f('topicNames', arr('string')), f('timeoutMs', 'int32')],
    response: [
      f('throttleTimeMs', 'int32', 1),
      f('responses', arr([f('name', 'string'), f('errorCode', 'int16')])),
    ],
  },
  {
    key: ApiKey.DeleteRecords,
    name: 'DeleteRecords',
    min: 0,
    max: 1,
    request: [
      f(
        'topics',
        arr([
          f('name', 'string'),
          f('partitions', arr([f('partitionIndex', 'int32'), f('offset', 'int64')])),
        ]),
      ),
      f('timeoutMs', 'int32'),
    ],
    response: [
      f('throttleTimeMs', 'int32'),
      f(
        'topics',
        arr([
          f('name', 'string'),
          f(
            'partitions',
            arr([f('partitionIndex', 'int32'), f('lowWatermark', 'int64'), f('errorCode', 'int16')]),
          ),
        ]),
      ),
    ],
  },
  {
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
  },
  {
    key: ApiKey.DescribeConfigs,
    name: 'DescribeConfigs',
    min: 0,
    max: 3,
    request: [
      f(
        'resources',
        arr([f('resourceType', 'int8'), f('resourceName', 'string'), f('configurationKeys', narr('string'))]),
      ),
      f('includeSynonyms', 'bool', 1),
      f('includeDocumentation', 'bool', 3),
    ],
    response: [
      f('throttleTimeMs', 'int32'),
      f(
        'results',
        arr([
          f('errorCode', 'int16'),
          f('errorMessage', 'nstring'),
          f('resourceType', 'int8'),
          f('resourceName', 'string'),
          f(
            'configs',
            arr([
              f('name', 'string'),
              f('value', 'nstring'),
              f('readOnly', 'bool'),
              f('isDefault', 'bool', 0, 0),
              f('configSource', 'int8', 1),
              f('isSensitive', 'bool'),
              f('synonyms', arr([f('name', 'string'), f('value', 'nstring'), f('source', 'int8')]), 1),
              f('configType', 'int8', 3),
              f('documentation', 'nstring', 3),
            ]),
          ),
        ]),
      ),
    ],
  },
  {
    key: ApiKey.CreatePartitions,
    name: 'CreatePartitions',
    min: 0,
    max: 1,
    request: [
      f(
        'topics',
        arr([f('name', 'string'), f('count', 'int32'), f('assignments', narr([f('brokerIds', i32arr)]))]),
      ),
      f('timeoutMs', 'int32'),
      f('validateOnly', 'bool'),
    ],
    response: [
      f('throttleTimeMs', 'int32'),
      f('results', arr([f('name', 'string'), f('errorCode', 'int16'), f('errorMessage', 'nstring')])),
    ],
  },
  {
    key: ApiKey.SaslHandshake,
    name: 'SaslHandshake',
    // v1: the SASL tokens then travel in SaslAuthenticate requests (v0 sent them unframed).
    min: 1,
    max: 1,
    request: [f('mechanism', 'string')],
    response: [f('errorCode', 'int16'), f('mechanisms', arr('string'))],
  },
  {
    key: ApiKey.SaslAuthenticate,
    name: 'SaslAuthenticate',
    min: 0,
    max: 1,
    request: [f('authBytes', 'bytes')],
    response: [
      f('errorCode', 'int16'),
      f('errorMessage', 'nstring'),
      f('authBytes', 'bytes'),
      f('sessionLifetimeMs', 'int64', 1),
    ],
  },
];

export const API_SPECS: ReadonlyMap<number, ApiSpec> = new Map(specs.map((s) => [s.key, s]));

/** Kafka error codes used by the broker (org.apache.kafka.common.protocol.Errors). */
export const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  MESSAGE_TOO_LARGE: 10,
  OFFSET_METADATA_TOO_LARGE: 12,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REPLICA_ASSIGNMENT: 39,
  INVALID_CONFIG: 40,
  INVALID_REQUEST: 42,
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 43,
  POLICY_VIOLATION: 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  INVALID_TIMESTAMP: 32,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  UNKNOWN_PRODUCER_ID: 59,
  GROUP_ID_NOT_FOUND: 69,
  NON_EMPTY_GROUP: 68,
  MEMBER_ID_REQUIRED: 79,
  INVALID_RECORD: 87,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
  UNKNOWN_SERVER_ERROR: -1,
} as const;
