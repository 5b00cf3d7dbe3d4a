import { arr, f } from './schema-codec';
import { ApiKey, type ApiSpec } from './api-spec';

/** Consumer group membership: the coordinator, join/sync/heartbeat/leave, and listing groups. */

export const FIND_COORDINATOR: ApiSpec = {
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
};

export const JOIN_GROUP: ApiSpec = {
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
    f('members', arr([f('memberId', 'string'), f('groupInstanceId', 'nstring', 5), f('metadata', 'bytes')])),
  ],
};

export const HEARTBEAT: ApiSpec = {
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
};

export const LEAVE_GROUP: ApiSpec = {
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
    f('members', arr([f('memberId', 'string'), f('groupInstanceId', 'nstring'), f('errorCode', 'int16')]), 3),
  ],
};

export const SYNC_GROUP: ApiSpec = {
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
};

export const DESCRIBE_GROUPS: ApiSpec = {
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
};

export const LIST_GROUPS: ApiSpec = {
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
};
