// The jest project integration-kafka: the Kafka-path suites take real Apache Kafka from
// libs/testing's startTestBroker instead of the embedded broker.
process.env.PGFERRY_TEST_BROKER = 'kafka';
