import { randomUUID } from 'node:crypto';
import { ErrorCode } from '@pgferry/kafka-protocol';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export interface JoinRequest {
  groupId: string;
  memberId: string;
  groupInstanceId: string | null;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: Array<{ name: string; metadata: Buffer }>;
  clientId: string;
  clientHost: string;
  /** JoinGroup v4+ makes a new member rejoin with the id the broker gives it (KIP-394). */
  requireKnownMemberId: boolean;
}

export interface JoinResponse {
  errorCode: number;
  generationId: number;
  protocolName: string;
  leader: string;
  memberId: string;
  members: Array<{ memberId: string; groupInstanceId: string | null; metadata: Buffer }>;
}

interface Member {
  id: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocols: Array<{ name: string; metadata: Buffer }>;
  assignment: Buffer;
  pendingJoin?: (r: JoinResponse) => void;
  pendingSync?: (r: { errorCode: number; assignment: Buffer }) => void;
  sessionTimer?: NodeJS.Timeout;
}

class Group {
  state: GroupState = 'Empty';
  generation = 0;
  protocolType = '';
  protocol = '';
  leader = '';
  members = new Map<string, Member>();
  pendingIds = new Set<string>();
  rebalanceTimer?: NodeJS.Timeout;
  constructor(readonly id: string) {}
}

export const MIN_SESSION_TIMEOUT_MS = 100;
export const MAX_SESSION_TIMEOUT_MS = 30 * 60 * 1000;

/**
 * Consumer-group membership, Kafka's classic rebalance protocol: JoinGroup collects members
 * (PreparingRebalance), completes when every known member has rejoined or the rebalance timeout
 * passes (then the missing are dropped), answers the leader with the member list
 * (CompletingRebalance); SyncGroup takes the leader's assignment and hands each member its part
 * (Stable). A member that stops heartbeating for its session timeout is removed and the group
 * rebalances. Generation and member checks on Heartbeat, SyncGroup and OffsetCommit.
 * Membership is soft state, as in Kafka: after a broker restart members rejoin.
 */
export class GroupCoordinator {
  private groups = new Map<string, Group>();

  private group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) this.groups.set(id, (g = new Group(id)));
    return g;
  }

  join(req: JoinRequest): Promise<JoinResponse> {
    const fail = (errorCode: number, memberId = req.memberId): Promise<JoinResponse> =>
      Promise.resolve({ errorCode, generationId: -1, protocolName: '', leader: '', memberId, members: [] });
    if (!req.groupId) return fail(ErrorCode.INVALID_GROUP_ID);
    if (req.sessionTimeoutMs < MIN_SESSION_TIMEOUT_MS || req.sessionTimeoutMs > MAX_SESSION_TIMEOUT_MS)
      return fail(ErrorCode.INVALID_SESSION_TIMEOUT);
    const g = this.group(req.groupId);
    if (
      req.protocols.length === 0 ||
      (g.members.size > 0 &&
        (g.protocolType !== req.protocolType || !this.hasCommonProtocol(g, req.protocols)))
    ) {
      return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    }
    let memberId = req.memberId;
    if (!memberId) {
      memberId = `${req.clientId || 'member'}-${randomUUID()}`;
      if (req.requireKnownMemberId) {
        g.pendingIds.add(memberId);
        return fail(ErrorCode.MEMBER_ID_REQUIRED, memberId);
      }
    } else if (!g.members.has(memberId) && !g.pendingIds.delete(memberId)) {
      return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    }
    let m = g.members.get(memberId);
    if (!m) {
      m = {
        id: memberId,
        groupInstanceId: req.groupInstanceId,
        clientId: req.clientId,
        clientHost: req.clientHost,
        sessionTimeoutMs: 0,
        rebalanceTimeoutMs: 0,
        protocols: [],
        assignment: Buffer.alloc(0),
      };
      g.members.set(memberId, m);
    }
    Object.assign(m, {
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs || req.sessionTimeoutMs,
      protocols: req.protocols,
      clientId: req.clientId,
    });
    g.protocolType = req.protocolType;
    this.stopSession(m);
    const member = m;
    const response = new Promise<JoinResponse>((resolve) => {
      member.pendingJoin?.({
        errorCode: ErrorCode.UNKNOWN_MEMBER_ID,
        generationId: -1,
        protocolName: '',
        leader: '',
        memberId,
        members: [],
      });
      member.pendingJoin = resolve;
    });
    this.prepareRebalance(g);
    this.maybeCompleteJoin(g);
    return response;
  }

  private hasCommonProtocol(g: Group, protocols: Array<{ name: string }>): boolean {
    return protocols.some((p) =>
      [...g.members.values()].every(
        (m) => m.protocols.length === 0 || m.protocols.some((q) => q.name === p.name),
      ),
    );
  }

  private prepareRebalance(g: Group): void {
    if (g.state === 'PreparingRebalance') return;
    if (g.state === 'CompletingRebalance') {
      for (const m of g.members.values()) {
        m.pendingSync?.({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, assignment: Buffer.alloc(0) });
        m.pendingSync = undefined;
      }
    }
    g.state = 'PreparingRebalance';
    const timeout = Math.max(0, ...[...g.members.values()].map((m) => m.rebalanceTimeoutMs));
    clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = setTimeout(() => this.completeJoin(g, true), timeout);
  }

  private maybeCompleteJoin(g: Group): void {
    if (g.state === 'PreparingRebalance' && [...g.members.values()].every((m) => m.pendingJoin))
      this.completeJoin(g, false);
  }

  private completeJoin(g: Group, timedOut: boolean): void {
    if (g.state !== 'PreparingRebalance') return;
    clearTimeout(g.rebalanceTimer);
    if (timedOut) for (const m of [...g.members.values()]) if (!m.pendingJoin) this.removeMember(g, m, false);
    g.generation++;
    if (g.members.size === 0) {
      g.state = 'Empty';
      g.protocol = '';
      g.leader = '';
      return;
    }
    g.protocol = this.selectProtocol(g);
    if (!g.members.has(g.leader)) g.leader = g.members.keys().next().value as string;
    g.state = 'CompletingRebalance';
    const all = [...g.members.values()].map((m) => ({
      memberId: m.id,
      groupInstanceId: m.groupInstanceId,
      metadata: m.protocols.find((p) => p.name === g.protocol)!.metadata,
    }));
    for (const m of g.members.values()) {
      const resolve = m.pendingJoin!;
      m.pendingJoin = undefined;
      this.startSession(g, m);
      resolve({
        errorCode: ErrorCode.NONE,
        generationId: g.generation,
        protocolName: g.protocol,
        leader: g.leader,
        memberId: m.id,
        members: m.id === g.leader ? all : [],
      });
    }
  }

  private selectProtocol(g: Group): string {
    const members = [...g.members.values()];
    const candidates = members[0].protocols
      .map((p) => p.name)
      .filter((name) => members.every((m) => m.protocols.some((p) => p.name === name)));
    const votes = new Map<string, number>();
    for (const m of members) {
      const choice = m.protocols.find((p) => candidates.includes(p.name))!.name;
      votes.set(choice, (votes.get(choice) ?? 0) + 1);
    }
    return [...votes].sort((a, b) => b[1] - a[1])[0][0];
  }

  sync(
    groupId: string,
    generationId: number,
    memberId: string,
    assignments: Array<{ memberId: string; assignment: Buffer }>,
  ): Promise<{ errorCode: number; assignment: Buffer }> {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    const fail = (errorCode: number) => Promise.resolve({ errorCode, assignment: Buffer.alloc(0) });
    if (!g || !m) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    if (generationId !== g.generation) return fail(ErrorCode.ILLEGAL_GENERATION);
    if (g.state === 'PreparingRebalance') return fail(ErrorCode.REBALANCE_IN_PROGRESS);
    this.startSession(g, m);
    if (g.state === 'Stable') return Promise.resolve({ errorCode: ErrorCode.NONE, assignment: m.assignment });
    const response = new Promise<{ errorCode: number; assignment: Buffer }>((resolve) => {
      m.pendingSync = resolve;
    });
    if (memberId === g.leader) {
      const given = new Map(assignments.map((a) => [a.memberId, a.assignment]));
      g.state = 'Stable';
      for (const member of g.members.values()) {
        member.assignment = given.get(member.id) ?? Buffer.alloc(0);
        member.pendingSync?.({ errorCode: ErrorCode.NONE, assignment: member.assignment });
        member.pendingSync = undefined;
      }
    }
    return response;
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (!g || !m) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (g.state === 'PreparingRebalance') {
      this.startSession(g, m);
      return ErrorCode.REBALANCE_IN_PROGRESS;
    }
    if (generationId !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    this.startSession(g, m);
    return ErrorCode.NONE;
  }

  leave(groupId: string, memberIds: string[]): Array<{ memberId: string; errorCode: number }> {
    const g = this.groups.get(groupId);
    return memberIds.map((id) => {
      const m = g?.members.get(id);
      if (!g || !m) return { memberId: id, errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
      this.removeMember(g, m, true);
      return { memberId: id, errorCode: ErrorCode.NONE };
    });
  }

  /** Whether a member may commit offsets for this generation (generation -1: a simple, groupless commit). */
  checkCommit(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    if (generationId < 0) return !g || g.members.size === 0 ? ErrorCode.NONE : ErrorCode.ILLEGAL_GENERATION;
    const m = g?.members.get(memberId);
    if (!g || !m) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    if (g.state === 'PreparingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    this.startSession(g, m);
    return ErrorCode.NONE;
  }

  describe(groupId: string) {
    const g = this.groups.get(groupId);
    if (!g) return { state: 'Dead' as GroupState, protocolType: '', protocol: '', members: [] };
    return {
      state: g.state,
      protocolType: g.protocolType,
      protocol: g.state === 'Stable' || g.state === 'CompletingRebalance' ? g.protocol : '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.id,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        memberMetadata: m.protocols.find((p) => p.name === g.protocol)?.metadata ?? Buffer.alloc(0),
        memberAssignment: g.state === 'Stable' ? m.assignment : Buffer.alloc(0),
      })),
    };
  }

  list(): Array<{ groupId: string; protocolType: string; state: GroupState }> {
    return [...this.groups.values()]
      .filter((g) => g.members.size > 0 || g.state !== 'Empty' || g.generation > 0)
      .map((g) => ({ groupId: g.id, protocolType: g.protocolType, state: g.state }));
  }

  private startSession(g: Group, m: Member): void {
    this.stopSession(m);
    m.sessionTimer = setTimeout(() => {
      if (g.members.get(m.id) === m && !m.pendingJoin && !m.pendingSync) this.removeMember(g, m, true);
    }, m.sessionTimeoutMs);
  }

  private stopSession(m: Member): void {
    clearTimeout(m.sessionTimer);
    m.sessionTimer = undefined;
  }

  private removeMember(g: Group, m: Member, rebalance: boolean): void {
    this.stopSession(m);
    g.members.delete(m.id);
    m.pendingJoin?.({
      errorCode: ErrorCode.UNKNOWN_MEMBER_ID,
      generationId: -1,
      protocolName: '',
      leader: '',
      memberId: m.id,
      members: [],
    });
    m.pendingSync?.({ errorCode: ErrorCode.UNKNOWN_MEMBER_ID, assignment: Buffer.alloc(0) });
    m.pendingJoin = m.pendingSync = undefined;
    if (!rebalance) return;
    if (g.members.size === 0) {
      clearTimeout(g.rebalanceTimer);
      g.state = 'Empty';
      g.generation++;
      g.protocol = '';
      g.leader = '';
      return;
    }
    if (g.state === 'PreparingRebalance') this.maybeCompleteJoin(g);
    else this.prepareRebalance(g);
  }

  close(): void {
    for (const g of this.groups.values()) {
      clearTimeout(g.rebalanceTimer);
      for (const m of g.members.values()) this.stopSession(m);
    }
  }
}
