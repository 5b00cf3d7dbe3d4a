export { formatPrecheckReport } from './precheck-format';
export { blocking, type PrecheckReport } from './precheck-report';
export { runPrecheck } from './run-precheck';
export {
  checkKafka,
  type KafkaFacts,
  type KafkaFactsInput,
  type KafkaFactsReader,
  type KafkaTopicProblem,
} from './check-kafka';
