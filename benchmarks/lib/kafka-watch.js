// What the benchmarks read off Kafka itself: how many records topics hold, and how far a probe
// row's changes have come, whichever pipeline wrote them.
const { CompressionCodecs, CompressionTypes, Kafka, logLevel } = require('kafkajs');
const { lz4FrameCompress, lz4FrameDecompress } = require('@pgferry/core');

// pgferry's snapshot batches are lz4 (options.snapshotCompression); kafkajs ships no LZ4 codec.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => lz4FrameCompress(encoder.buffer),
  decompress: async (buffer) => lz4FrameDecompress(buffer),
});

function kafkaClient(bootstrap, clientId) {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING });
}

/**
 * Record counts of topics: the sum of every partition's high watermark (records only, as neither
 * pipeline writes transactionally). A topic not created yet counts 0.
 */
async function openCounter(bootstrap) {
  const admin = kafkaClient(bootstrap, 'bench-counter').admin();
  await admin.connect();
  return {
    async count(topic) {
      const parts = await admin.fetchTopicOffsets(topic).catch(() => []);
      return parts.reduce((n, p) => n + Number(p.high), 0);
    },
    async counts(topics) {
      const out = {};
      for (const t of topics) out[t] = await this.count(t);
      return out;
    },
    close: () => admin.disconnect(),
  };
}

/**
 * Follows one topic from its start, handing `each` every record's value (null for a tombstone).
 * `ready()` resolves once the consumer has joined and fetches; `seen()` counts the records
 * handled; a throwing `each` is kept and thrown by `check()`.
 */
async function follow(bootstrap, topic, groupId, each) {
  const consumer = kafkaClient(bootstrap, 'bench-follow').consumer({ groupId, maxWaitTimeInMs: 100 });
  let seen = 0;
  let failure = null;
  let joined;
  const ready = new Promise((r) => (joined = r));
  consumer.on(consumer.events.FETCH_START, () => joined());
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      try {
        await each(message.value);
      } catch (err) {
        failure ??= err;
      }
      seen++;
    },
  });
  return {
    ready: () => ready,
    seen: () => seen,
    check() {
      if (failure) throw new Error(`reading a record of ${topic}: ${failure.message}`);
    },
    stop: () => consumer.disconnect(),
  };
}

/**
 * follow() keeping the largest value `decode(value)` returns (null skips the record): for a
 * probe row whose counter goes up, how far the pipeline has come. `max()` is -1 before any.
 */
async function followMax(bootstrap, topic, decode, groupId) {
  let max = -1;
  const f = await follow(bootstrap, topic, groupId, async (value) => {
    const v = value ? await decode(value) : null;
    if (v !== null && v > max) max = v;
  });
  return {
    ...f,
    max() {
      f.check();
      return max;
    },
  };
}

module.exports = { kafkaClient, openCounter, follow, followMax };
