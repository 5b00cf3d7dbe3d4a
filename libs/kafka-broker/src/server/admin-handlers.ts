import { ErrorCode } from '@pgferry/kafka-protocol';
import { TOPIC_CONFIG_DEFS, DEFAULT_TOPIC_CONFIG } from '../storage/topic-config';
import { validateTopicName, type TopicResult } from '../storage/topic-store';
import type { BrokerState } from './broker-state';

/* Metadata, CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, InitProducerId. */

type Req = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function topicError(r: TopicResult): number {
  if (r.ok) return ErrorCode.NONE;
  switch (r.code) {
    case 'exists':
      return ErrorCode.TOPIC_ALREADY_EXISTS;
    case 'invalid-name':
      return ErrorCode.INVALID_TOPIC_EXCEPTION;
    case 'invalid-partitions':
      return ErrorCode.INVALID_PARTITIONS;
    case 'invalid-config':
      return ErrorCode.INVALID_CONFIG;
    case 'unknown':
      return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
  }
}

export function handleMetadata(state: BrokerState, req: Req, version: number): Req {
  const requested = req.topics as Array<{ name: string }> | null;
  const all = requested === null || (version === 0 && requested.length === 0);
  const names = all ? [...state.topics.topics.keys()] : requested!.map((t) => t.name);
  const allowCreate = state.options.autoCreateTopics && (version < 4 || req.allowAutoTopicCreation);
  const topics = names.map((name) => {
    let topic = state.topics.get(name);
    if (!topic && allowCreate) {
      const r = state.topics.create(name, state.options.defaultPartitions, []);
      if (!r.ok && r.code === 'invalid-name')
        return {
          errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION,
          name,
          isInternal: false,
          partitions: [],
          topicAuthorizedOperations: -2147483648,
        };
      topic = state.topics.get(name);
    }
    if (!topic) {
      const code = validateTopicName(name)
        ? ErrorCode.INVALID_TOPIC_EXCEPTION
        : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
      return {
        errorCode: code,
        name,
        isInternal: false,
        partitions: [],
        topicAuthorizedOperations: -2147483648,
      };
    }
    return {
      errorCode: ErrorCode.NONE,
      name,
      isInternal: false,
      partitions: topic.partitions.map((_, i) => ({
        errorCode: 0,
        partitionIndex: i,
        leaderId: state.nodeId,
        leaderEpoch: 0,
        replicaNodes: [state.nodeId],
        isrNodes: [state.nodeId],
        offlineReplicas: [],
      })),
      topicAuthorizedOperations: -2147483648,
    };
  });
  return {
    throttleTimeMs: 0,
    brokers: [{ nodeId: state.nodeId, host: state.host, port: state.advertisedPort, rack: null }],
    clusterId: state.clusterId,
    controllerId: state.nodeId,
    topics,
    clusterAuthorizedOperations: -2147483648,
  };
}

export function handleCreateTopics(state: BrokerState, req: Req): Req {
  const topics = (req.topics as Req[]).map((t) => {
    const done = (errorCode: number, errorMessage: string | null = null) => ({
      name: t.name,
      errorCode,
      errorMessage,
    });
    const rf = t.replicationFactor as number;
    const assignments = t.assignments as Array<{ partitionIndex: number; brokerIds: number[] }>;
    if (assignments.length > 0) {
      if ((t.numPartitions as number) !== -1 || rf !== -1)
        return done(
          ErrorCode.INVALID_REQUEST,
          'give either assignments or numPartitions and replicationFactor',
        );
      if (assignments.some((a) => a.brokerIds.length !== 1 || a.brokerIds[0] !== state.nodeId)) {
        return done(
          ErrorCode.INVALID_REPLICA_ASSIGNMENT,
          `this single-node broker has only node ${state.nodeId}`,
        );
      }
    } else if (rf !== -1 && rf !== 1) {
      return done(
        ErrorCode.INVALID_REPLICATION_FACTOR,
        `replication factor ${rf} is larger than the 1 broker available`,
      );
    }
    const partitions =
      assignments.length > 0
        ? assignments.length
        : (t.numPartitions as number) === -1
          ? state.options.defaultPartitions
          : (t.numPartitions as number);
    const r = state.topics.create(t.name, partitions, t.configs, req.validateOnly);
    return done(topicError(r), r.ok ? null : r.message);
  });
  return { throttleTimeMs: 0, topics };
}

export function handleDeleteTopics(state: BrokerState, req: Req): Req {
  return {
    throttleTimeMs: 0,
    responses: (req.topicNames as string[]).map((name) => {
      const r = state.topics.delete(name);
      if (r.ok) state.offsets.deleteTopic(name);
      return { name, errorCode: topicError(r) };
    }),
  };
}

export function handleCreatePartitions(state: BrokerState, req: Req): Req {
  return {
    throttleTimeMs: 0,
    results: (req.topics as Req[]).map((t) => {
      const r = state.topics.addPartitions(t.name, t.count, req.validateOnly);
      return { name: t.name, errorCode: topicError(r), errorMessage: r.ok ? null : r.message };
    }),
  };
}

const RESOURCE_TOPIC = 2;
const RESOURCE_BROKER = 4;
const SOURCE_DYNAMIC_TOPIC = 1;
const SOURCE_STATIC_BROKER = 4;
const SOURCE_DEFAULT = 5;

export function handleDescribeConfigs(state: BrokerState, req: Req, version: number): Req {
  const results = (req.resources as Req[]).map((r) => {
    const base = { resourceType: r.resourceType, resourceName: r.resourceName };
    const keys = r.configurationKeys as string[] | null;
    const wanted = (name: string) => keys === null || keys.length === 0 || keys.includes(name);
    if (r.resourceType === RESOURCE_TOPIC) {
      const topic = state.topics.get(r.resourceName);
      if (!topic)
        return {
          ...base,
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          errorMessage: `topic ${r.resourceName} does not exist`,
          configs: [],
        };
      const configs = Object.entries(TOPIC_CONFIG_DEFS)
        .filter(([name]) => wanted(name))
        .map(([name, def]) => {
          const value = def.format(topic.config[def.key]);
          const isDefault = value === def.format(DEFAULT_TOPIC_CONFIG[def.key]);
          return {
            name,
            value,
            readOnly: false,
            isDefault,
            configSource: isDefault ? SOURCE_DEFAULT : SOURCE_DYNAMIC_TOPIC,
            isSensitive: false,
            synonyms: [],
            configType: def.type,
            documentation: version >= 3 && req.includeDocumentation ? def.doc : null,
          };
        });
      return { ...base, errorCode: ErrorCode.NONE, errorMessage: null, configs };
    }
    if (r.resourceType === RESOURCE_BROKER) {
      const flush = state.options.flush;
      const entries: Array<[string, string, number]> = [
        ['auto.create.topics.enable', String(state.options.autoCreateTopics), 1],
        ['num.partitions', String(state.options.defaultPartitions), 3],
        ['default.replication.factor', '1', 4],
        ['socket.request.max.bytes', String(state.options.maxRequestBytes), 3],
        ['log.flush.interval.messages', flush === 'batch' ? '1' : String(2 ** 63 - 1), 5],
        ['log.flush.interval.ms', flush === 'batch' ? 'null' : String(flush), 5],
      ];
      const configs = entries
        .filter(([name]) => wanted(name))
        .map(([name, value, type]) => ({
          name,
          value,
          readOnly: true,
          isDefault: false,
          configSource: SOURCE_STATIC_BROKER,
          isSensitive: false,
          synonyms: [],
          configType: type,
          documentation: null,
        }));
      return { ...base, errorCode: ErrorCode.NONE, errorMessage: null, configs };
    }
    return {
      ...base,
      errorCode: ErrorCode.INVALID_REQUEST,
      errorMessage: `resource type ${r.resourceType} is not supported (topic 2, broker 4)`,
      configs: [],
    };
  });
  return { throttleTimeMs: 0, results };
}

export function handleInitProducerId(state: BrokerState, req: Req): Req {
  if (req.transactionalId !== null) {
    return {
      throttleTimeMs: 0,
      errorCode: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
      producerId: -1n,
      producerEpoch: -1,
    };
  }
  return {
    throttleTimeMs: 0,
    errorCode: ErrorCode.NONE,
    producerId: state.allocateProducerId(),
    producerEpoch: 0,
  };
}
