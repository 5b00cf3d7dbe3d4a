export { type EmbeddedKafka, startEmbeddedKafka } from './embedded/start-embedded-kafka';
