import { arr, f, narr } from './schema-codec';
import { ApiKey, type ApiSpec, i32arr } from './api-spec';

/** Cluster metadata, log offsets, and a consumer group's committed offsets. */

export const METADATA: ApiSpec = {
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
};

export const LIST_OFFSETS: ApiSpec = {
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
};

export const OFFSET_COMMIT: ApiSpec = {
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
};

export const OFFSET_FETCH: ApiSpec = {
  key: ApiKey.OffsetFetch,
  name: 'OffsetFetch',
  min: 1,
  max: 5,
  request: [f('groupId', 'string'), f('topics', narr([f('name', 'string'), f('partitionIndexes', i32arr)]))],
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
};
