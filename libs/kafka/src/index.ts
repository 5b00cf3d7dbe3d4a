export { PartitionedBatches } from './framed-batches';
export { KafkaPartitionFetcher, type PartitionData } from './kafka-partition-fetcher';
export { keyPartition } from './kafka-partitioner';
export { KafkaPublisher } from './kafka-publisher';
export { registerKafkajsLz4 } from './kafkajs-lz4';
export { topicEnds } from './topic-ends';
