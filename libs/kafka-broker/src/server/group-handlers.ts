import { ErrorCode } from '@pgferry/kafka-protocol';
import type { BrokerState } from './broker-state';

/* FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
   DescribeGroups, ListGroups. */

type Req = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ClientInfo {
  clientId: string;
  clientHost: string;
}

export function handleFindCoordinator(state: BrokerState, req: Req): Req {
  if ((req.keyType as number) !== 0) {
    return {
      throttleTimeMs: 0,
      errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE,
      errorMessage: 'transactions are not supported by the embedded broker',
      nodeId: -1,
      host: '',
      port: -1,
    };
  }
  return {
    throttleTimeMs: 0,
    errorCode: ErrorCode.NONE,
    errorMessage: null,
    nodeId: state.nodeId,
    host: state.host,
    port: state.advertisedPort,
  };
}

export async function handleJoinGroup(
  state: BrokerState,
  req: Req,
  version: number,
  client: ClientInfo,
): Promise<Req> {
  const r = await state.groups.join({
    groupId: req.groupId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    sessionTimeoutMs: req.sessionTimeoutMs,
    rebalanceTimeoutMs: version >= 1 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs,
    protocolType: req.protocolType,
    protocols: req.protocols,
    clientId: client.clientId,
    clientHost: client.clientHost,
    requireKnownMemberId: version >= 4,
  });
  return { throttleTimeMs: 0, ...r };
}

export async function handleSyncGroup(state: BrokerState, req: Req): Promise<Req> {
  const r = await state.groups.sync(req.groupId, req.generationId, req.memberId, req.assignments);
  return { throttleTimeMs: 0, ...r };
}

export function handleHeartbeat(state: BrokerState, req: Req): Req {
  return {
    throttleTimeMs: 0,
    errorCode: state.groups.heartbeat(req.groupId, req.generationId, req.memberId),
  };
}

export function handleLeaveGroup(state: BrokerState, req: Req, version: number): Req {
  const ids =
    version >= 3 ? (req.members as Req[]).map((m) => m.memberId as string) : [req.memberId as string];
  const results = state.groups.leave(req.groupId, ids);
  const topError = version < 3 ? results[0].errorCode : ErrorCode.NONE;
  return {
    throttleTimeMs: 0,
    errorCode: topError,
    members: results.map((r, i) => ({
      ...r,
      groupInstanceId: version >= 3 ? (req.members as Req[])[i].groupInstanceId : null,
    })),
  };
}

export async function handleOffsetCommit(state: BrokerState, req: Req): Promise<Req> {
  const check = state.groups.checkCommit(req.groupId, req.generationId, req.memberId);
  const now = Date.now();
  const entries: Array<{
    topic: string;
    partition: number;
    committed: { offset: bigint; leaderEpoch: number; metadata: string | null; commitTimestamp: number };
  }> = [];
  const topics = (req.topics as Req[]).map((t) => ({
    name: t.name,
    partitions: (t.partitions as Req[]).map((p) => {
      let errorCode: number = check;
      if (errorCode === ErrorCode.NONE && !state.topics.partition(t.name, p.partitionIndex))
        errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
      if (
        errorCode === ErrorCode.NONE &&
        p.committedMetadata &&
        (p.committedMetadata as string).length > 4096
      )
        errorCode = ErrorCode.OFFSET_METADATA_TOO_LARGE;
      if (errorCode === ErrorCode.NONE) {
        entries.push({
          topic: t.name,
          partition: p.partitionIndex,
          committed: {
            offset: p.committedOffset,
            leaderEpoch: p.committedLeaderEpoch ?? -1,
            metadata: p.committedMetadata,
            commitTimestamp: now,
          },
        });
      }
      return { partitionIndex: p.partitionIndex, errorCode };
    }),
  }));
  state.offsets.commit(req.groupId, entries);
  if (state.options.flush === 'batch') await state.offsets.flush();
  return { throttleTimeMs: 0, topics };
}

export function handleOffsetFetch(state: BrokerState, req: Req): Req {
  const requested = req.topics as Array<{ name: string; partitionIndexes: number[] }> | null;
  const entries =
    requested === null
      ? state.offsets.all(req.groupId).map((e) => ({ topic: e.topic, partition: e.partition }))
      : requested.flatMap((t) => t.partitionIndexes.map((p) => ({ topic: t.name, partition: p })));
  const byTopic = new Map<string, Req[]>();
  for (const e of entries) {
    const c = state.offsets.get(req.groupId, e.topic, e.partition);
    const list = byTopic.get(e.topic) ?? [];
    list.push({
      partitionIndex: e.partition,
      committedOffset: c?.offset ?? -1n,
      committedLeaderEpoch: c?.leaderEpoch ?? -1,
      metadata: c ? c.metadata : '',
      errorCode: ErrorCode.NONE,
    });
    byTopic.set(e.topic, list);
  }
  return {
    throttleTimeMs: 0,
    topics: [...byTopic].map(([name, partitions]) => ({ name, partitions })),
    errorCode: ErrorCode.NONE,
  };
}

export function handleDescribeGroups(state: BrokerState, req: Req): Req {
  return {
    throttleTimeMs: 0,
    groups: (req.groups as string[]).map((groupId) => {
      const d = state.groups.describe(groupId);
      const known = d.state !== 'Dead' || state.offsets.groupIds().includes(groupId);
      return {
        errorCode: ErrorCode.NONE,
        groupId,
        groupState: d.state === 'Dead' && known ? 'Empty' : d.state,
        protocolType: d.protocolType,
        protocolData: d.protocol,
        members: d.members,
        authorizedOperations: -2147483648,
      };
    }),
  };
}

export function handleListGroups(state: BrokerState): Req {
  const seen = new Map<string, string>();
  for (const g of state.groups.list()) seen.set(g.groupId, g.protocolType);
  for (const id of state.offsets.groupIds()) if (!seen.has(id)) seen.set(id, '');
  return {
    throttleTimeMs: 0,
    errorCode: ErrorCode.NONE,
    groups: [...seen].map(([groupId, protocolType]) => ({ groupId, protocolType })),
  };
}
