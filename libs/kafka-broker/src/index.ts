export { type EmbeddedKafka, startEmbeddedKafka } from './embedded/start-embedded-kafka';
export { type BrokerSaslUser } from './server/sasl-server';
