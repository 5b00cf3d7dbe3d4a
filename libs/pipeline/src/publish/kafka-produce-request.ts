import type { KafkaJsProtocolRequest } from './kafkajs-internals';

/** Produce is API key 0. Versions 3 to 8 share one request layout (record batches v2). */
export const PRODUCE_API_KEY = 0;
export const PRODUCE_MIN_VERSION = 3;
export const PRODUCE_MAX_VERSION = 8;

export interface PartitionBatch {
  partition: number;
  batch: Buffer;
}

export interface PartitionResult {
  partition: number;
  errorCode: number;
  baseOffset: bigint;
  /** The broker's error text (v8 and later), else null. */
  errorMessage: string | null;
}

/**
 * Produce request v3..v8 for one topic, with record batches already encoded:
 *   transactional_id NULLABLE_STRING (null) | acks INT16 | timeout INT32
 *   [topic STRING [partition INT32, records BYTES]]
 */
export function encodeProduceRequest(
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly PartitionBatch[],
): Buffer {
  const topicBytes = Buffer.byteLength(topic, 'utf8');
  let size = 2 + 2 + 4 + 4 + 2 + topicBytes + 4;
  for (const b of batches) size += 4 + 4 + b.batch.length;
  const buf = Buffer.allocUnsafe(size);
  let pos = buf.writeInt16BE(-1, 0);
  pos = buf.writeInt16BE(acks, pos);
  pos = buf.writeInt32BE(timeoutMs, pos);
  pos = buf.writeInt32BE(1, pos);
  pos = buf.writeInt16BE(topicBytes, pos);
  pos += buf.write(topic, pos, 'utf8');
  pos = buf.writeInt32BE(batches.length, pos);
  for (const b of batches) {
    pos = buf.writeInt32BE(b.partition, pos);
    pos = buf.writeInt32BE(b.batch.length, pos);
    pos += b.batch.copy(buf, pos);
  }
  return buf;
}

/**
 * Produce response v3..v8, the partitions of every topic in it:
 *   [topic STRING [partition INT32, error_code INT16, base_offset INT64, log_append_time INT64,
 *   log_start_offset INT64 (v5+), [batch_index INT32, message NULLABLE_STRING] (v8+),
 *   error_message NULLABLE_STRING (v8+)]] throttle_time_ms INT32
 */
export function decodeProduceResponse(payload: Buffer, version: number): Map<string, PartitionResult[]> {
  let pos = 0;
  const int16 = () => ((pos += 2), payload.readInt16BE(pos - 2));
  const int32 = () => ((pos += 4), payload.readInt32BE(pos - 4));
  const int64 = () => ((pos += 8), payload.readBigInt64BE(pos - 8));
  const nstring = () => {
    const n = int16();
    if (n < 0) return null;
    pos += n;
    return payload.toString('utf8', pos - n, pos);
  };
  const out = new Map<string, PartitionResult[]>();
  for (let t = int32(); t > 0; t--) {
    const topic = nstring() ?? '';
    const results: PartitionResult[] = [];
    for (let p = int32(); p > 0; p--) {
      const partition = int32();
      const errorCode = int16();
      const baseOffset = int64();
      int64();
      if (version >= 5) int64();
      let errorMessage: string | null = null;
      if (version >= 8) {
        const recordErrors: string[] = [];
        for (let e = int32(); e > 0; e--) {
          const index = int32();
          const message = nstring();
          recordErrors.push(`record ${index}${message ? `: ${message}` : ''}`);
        }
        errorMessage = nstring();
        if (recordErrors.length)
          errorMessage = [errorMessage, ...recordErrors].filter((s) => s !== null).join('; ');
      }
      results.push({ partition, errorCode, baseOffset, errorMessage });
    }
    out.set(topic, results);
  }
  return out;
}

/** The request object kafkajs' connection sends: our bytes, our decoder; errors stay per partition. */
export function produceRequest(
  version: number,
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly PartitionBatch[],
): KafkaJsProtocolRequest<Map<string, PartitionResult[]>> {
  return {
    request: {
      apiKey: PRODUCE_API_KEY,
      apiVersion: version,
      apiName: 'Produce',
      expectResponse: () => acks !== 0,
      encode: async () => {
        const buf = encodeProduceRequest(acks, timeoutMs, topic, batches);
        return { buf, buffer: buf };
      },
    },
    response: {
      decode: async (payload) => decodeProduceResponse(payload, version),
      parse: async (data) => data,
    },
  };
}
