export { BrokerConnection, type BrokerConnectionOptions } from './broker-connection';
export {
  ConsumerGroupMember,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  type ConsumerGroupOptions,
  type TopicPartition,
} from './consumer-group';
export { FramedBatch, FramedRecords, PartitionedBatches, type FramedHeader } from './framed-batches';
export { KafkaAdmin, kafkaClusterId, withKafkaAdmin, type TopicSpec } from './kafka-admin';
export { KafkaCluster, type Lane, type PartitionInfo } from './kafka-cluster';
export {
  checkKafkaConfig,
  parseBroker,
  type KafkaClientConfig,
  type KafkaSaslOptions,
  type KafkaTlsOptions,
} from './kafka-config';
export { classifyKafkaError, KafkaError, kafkaError, missingTopic } from './kafka-errors';
export {
  KafkaPartitionFetcher,
  type PartitionData,
  type PartitionFetcherOptions,
} from './kafka-partition-fetcher';
export { keyPartition, murmur2 } from './kafka-partitioner';
export {
  checkTopicConfigs,
  KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  neededMessageBytes,
  planTopic,
  replicationFor,
  type PlannedTopic,
  type TopicConfigProblem,
  type TopicPlanInput,
  type TopicRole,
} from './kafka-topic-plan';
export { topicHoldings, type TopicHolding } from './kafka-topic-owners';
export { KafkaProducer, type ProducerOptions, type ProducerRecord } from './kafka-producer';
export { saslExchange, type SaslExchange } from './sasl';
