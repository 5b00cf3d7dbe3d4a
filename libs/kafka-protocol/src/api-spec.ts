import { arr, type Field } from './schema-codec';

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

/** An array of int32 (broker ids, partition indexes), shared by several layouts. */
export const i32arr = arr('int32');
