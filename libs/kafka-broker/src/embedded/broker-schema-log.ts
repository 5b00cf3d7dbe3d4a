import { buildBatch, decodeRecords, readBatchHeader } from '@pgferry/kafka-protocol';
import type { SchemaLog, SchemaLogRecord } from '@pgferry/registry';
import type { BrokerState } from '../server/broker-state';
import type { PartitionLog } from '../storage/partition-log';

export const SCHEMAS_TOPIC = '_schemas';

/**
 * The registry's store: the compacted, single-partition `_schemas` topic of the embedded broker,
 * the same layout Confluent Schema Registry uses (JSON keys and values, tombstones for deletes).
 * Appends go straight into the partition log of the same process and are fsynced before
 * `append` resolves, whatever the broker's flush policy: schemas are few and must never be lost.
 * Any Kafka client can read the topic like any other.
 */
export class BrokerSchemaLog implements SchemaLog {
  private readonly log: PartitionLog;

  constructor(state: BrokerState) {
    if (!state.topics.get(SCHEMAS_TOPIC)) {
      const r = state.topics.create(SCHEMAS_TOPIC, 1, [{ name: 'cleanup.policy', value: 'compact' }]);
      if (!r.ok) throw new Error(`cannot create the ${SCHEMAS_TOPIC} topic: ${r.message}`);
    }
    this.log = state.topics.partition(SCHEMAS_TOPIC, 0)!;
  }

  async load(): Promise<SchemaLogRecord[]> {
    const out: SchemaLogRecord[] = [];
    let offset = this.log.logStartOffset;
    while (offset < this.log.highWatermark) {
      const chunk = this.log.read(offset, 1024 * 1024, true);
      if (chunk.length === 0) break;
      let pos = 0;
      while (pos < chunk.length) {
        const h = readBatchHeader(chunk, pos);
        for (const r of decodeRecords(chunk, pos))
          if (r.offset >= offset && r.key) out.push({ key: r.key, value: r.value });
        offset = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
        pos += h.size;
      }
    }
    return out;
  }

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    const batch = buildBatch([{ key, value, timestamp: BigInt(Date.now()) }]);
    const result = this.log.append(batch, readBatchHeader(batch));
    if (result.error) throw new Error(`writing to ${SCHEMAS_TOPIC}: ${result.error.message}`);
    await this.log.flush();
  }
}
