import { arr, f, narr } from './schema-codec';
import { ApiKey, type ApiSpec, i32arr } from './api-spec';

/** Administration of topics: create, delete, delete records, describe configs, add partitions. */

export const CREATE_TOPICS: ApiSpec = {
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
};

export const DELETE_TOPICS: ApiSpec = {
  key: ApiKey.DeleteTopics,
  name: 'DeleteTopics',
  min: 0,
  max: 3,
  request: [f('topicNames', arr('string')), f('timeoutMs', 'int32')],
  response: [
    f('throttleTimeMs', 'int32', 1),
    f('responses', arr([f('name', 'string'), f('errorCode', 'int16')])),
  ],
};

export const DELETE_RECORDS: ApiSpec = {
  key: ApiKey.DeleteRecords,
  name: 'DeleteRecords',
  min: 0,
  max: 1,
  request: [
    f(
      'topics',
      arr([f('name', 'string'), f('partitions', arr([f('partitionIndex', 'int32'), f('offset', 'int64')]))]),
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
};

export const DESCRIBE_CONFIGS: ApiSpec = {
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
};

export const CREATE_PARTITIONS: ApiSpec = {
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
};
