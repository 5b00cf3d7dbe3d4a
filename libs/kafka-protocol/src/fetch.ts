import type { AbortedTransaction } from './record-batch-reader';

/**
 * Fetch is API key 1. Version 4 is the first with record batches v2, isolation levels and
 * aborted transactions in the response, and the oldest Kafka 4.0 still answers; later versions
 * only add fields this reader does not need (fetch sessions, log start offsets, rack).
 */
export const FETCH_API_KEY = 1;
export const FETCH_VERSION = 4;
/** read_committed: records of aborted transactions are listed so that they can be skipped. */
const READ_COMMITTED = 1;

export interface FetchPartition {
  partition: number;
  fetchOffset: bigint;
  maxBytes: number;
}

export interface FetchLimits {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
}

export interface FetchedPartition {
  partition: number;
  errorCode: number;
  highWatermark: bigint;
  abortedTransactions: AbortedTransaction[];
  /** The partition's record batches, a subarray of the response (empty when none). */
  records: Buffer;
}

/**
 * Fetch request v4:
 *   replica_id INT32 (-1: a consumer) | max_wait_ms INT32 | min_bytes INT32 | max_bytes INT32
 *   isolation_level INT8 | [topic STRING [partition INT32, fetch_offset INT64, partition_max_bytes INT32]]
 */
export function encodeFetchRequest(
  limits: FetchLimits,
  topics: ReadonlyMap<string, FetchPartition[]>,
): Buffer {
  let size = 4 + 4 + 4 + 4 + 1 + 4;
  for (const [topic, parts] of topics) size += 2 + Buffer.byteLength(topic, 'utf8') + 4 + 16 * parts.length;
  const buf = Buffer.allocUnsafe(size);
  let pos = buf.writeInt32BE(-1, 0);
  pos = buf.writeInt32BE(limits.maxWaitMs, pos);
  pos = buf.writeInt32BE(limits.minBytes, pos);
  pos = buf.writeInt32BE(limits.maxBytes, pos);
  pos = buf.writeInt8(READ_COMMITTED, pos);
  pos = buf.writeInt32BE(topics.size, pos);
  for (const [topic, parts] of topics) {
    pos = buf.writeInt16BE(Buffer.byteLength(topic, 'utf8'), pos);
    pos += buf.write(topic, pos, 'utf8');
    pos = buf.writeInt32BE(parts.length, pos);
    for (const p of parts) {
      pos = buf.writeInt32BE(p.partition, pos);
      pos = buf.writeBigInt64BE(p.fetchOffset, pos);
      pos = buf.writeInt32BE(p.maxBytes, pos);
    }
  }
  return buf;
}

/**
 * Fetch response v4:
 *   throttle_time_ms INT32 | [topic STRING [partition INT32, error_code INT16, high_watermark INT64,
 *   last_stable_offset INT64, [producer_id INT64, first_offset INT64] (nullable), records BYTES (nullable)]]
 * Records stay where they are in `payload`: no copy.
 */
export function decodeFetchResponse(payload: Buffer): Map<string, FetchedPartition[]> {
  let pos = 4;
  const int16 = () => ((pos += 2), payload.readInt16BE(pos - 2));
  const int32 = () => ((pos += 4), payload.readInt32BE(pos - 4));
  const int64 = () => ((pos += 8), payload.readBigInt64BE(pos - 8));
  const out = new Map<string, FetchedPartition[]>();
  for (let t = int32(); t > 0; t--) {
    const n = int16();
    const topic = payload.toString('utf8', pos, pos + n);
    pos += n;
    const parts: FetchedPartition[] = [];
    for (let p = int32(); p > 0; p--) {
      const partition = int32();
      const errorCode = int16();
      const highWatermark = int64();
      int64();
      const abortedTransactions: AbortedTransaction[] = [];
      for (let a = int32(); a > 0; a--)
        abortedTransactions.push({ producerId: int64(), firstOffset: int64() });
      const size = int32();
      const records = size > 0 ? payload.subarray(pos, pos + size) : payload.subarray(0, 0);
      pos += Math.max(size, 0);
      parts.push({ partition, errorCode, highWatermark, abortedTransactions, records });
    }
    out.set(topic, parts);
  }
  return out;
}
