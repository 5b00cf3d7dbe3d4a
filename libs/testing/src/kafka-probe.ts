import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';

/** How a broker is judged ready; `gone()` returns why the process is gone, or null while it runs. */
export interface ReadyProbeOptions {
  timeoutMs: number;
  /** The cluster id the broker was formatted with: another Kafka on the same port is not ready. */
  clusterId: string;
  gone: () => string | null;
  /** Resolves when the process exits, to cut a wait short. */
  exited: Promise<unknown>;
}

/**
 * Polls until the broker does what a client of it needs: answers a Metadata request with its own
 * cluster id, creates a
 * topic whose partition gets a leader, and has a group coordinator (FindCoordinator, which also
 * creates `__consumer_offsets`). The probe topic is deleted again. Steps that passed are not
 * repeated. Throws with the step it was at and the last error, or when the process exits.
 */
export async function waitForKafkaReady(bootstrap: string, options: ReadyProbeOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const topic = `pgferry-ready-probe-${randomBytes(4).toString('hex')}`;
  const kafka = new Kafka({
    clientId: 'pgferry-ready-probe',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  });
  let step: 'metadata' | 'create topic' | 'topic leader' | 'group coordinator' | 'delete topic' = 'metadata';
  let lastError = '';
  for (;;) {
    const why = options.gone();
    if (why !== null) throw new Error(`${why} before it was ready (at step: ${step})`);
    const admin = kafka.admin({ retry: { retries: 0 } });
    try {
      await admin.connect();
      // Every attempt: a fresh admin knows no broker until a Metadata response names one.
      const { clusterId } = await admin.describeCluster();
      if (clusterId !== options.clusterId) {
        throw new Error(`${bootstrap} is answered by another Kafka (cluster id ${clusterId})`);
      }
      if (step === 'metadata') step = 'create topic';
      if (step === 'create topic') {
        try {
          await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] });
        } catch (err) {
          if (!/already exists/i.test(String((err as Error).message))) throw err;
        }
        step = 'topic leader';
      }
      if (step === 'topic leader') {
        const md = await admin.fetchTopicMetadata({ topics: [topic] });
        const leader = md.topics[0]?.partitions[0]?.leader ?? -1;
        if (leader < 0) throw new Error(`partition ${topic}-0 has no leader yet`);
        step = 'group coordinator';
      }
      if (step === 'group coordinator') {
        await admin.describeGroups(['pgferry-ready-probe']);
        step = 'delete topic';
      }
      await admin.deleteTopics({ topics: [topic], timeout: 5000 });
      return;
    } catch (err) {
      lastError = (err as Error).message ?? String(err);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `not ready after ${options.timeoutMs} ms (at step: ${step}; last error: ${lastError || 'none'})`,
      );
    }
    await Promise.race([new Promise((r) => setTimeout(r, 100)), options.exited]);
  }
}
