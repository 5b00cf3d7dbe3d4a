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

/** A record batch not yet written: its size and how to write it (see PendingBatch). */
export interface BatchSource {
  partition: number;
  bytes: number;
  /** Writes the batch's `bytes` bytes at dst[pos]. */
  writeInto(dst: Buffer, pos: number): void;
}

function bodyBytes(topic: string, batches: readonly BatchSource[]): number {
  let size = 2 + 2 + 4 + 4 + 2 + Buffer.byteLength(topic, 'utf8') + 4;
  for (const b of batches) size += 4 + 4 + b.bytes;
  return size;
}

function writeBody(
  buf: Buffer,
  pos: number,
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly BatchSource[],
): number {
  pos = buf.writeInt16BE(-1, pos);
  pos = buf.writeInt16BE(acks, pos);
  pos = buf.writeInt32BE(timeoutMs, pos);
  pos = buf.writeInt32BE(1, pos);
  pos = buf.writeInt16BE(Buffer.byteLength(topic, 'utf8'), pos);
  pos += buf.write(topic, pos, 'utf8');
  pos = buf.writeInt32BE(batches.length, pos);
  for (const b of batches) {
    pos = buf.writeInt32BE(b.partition, pos);
    pos = buf.writeInt32BE(b.bytes, pos);
    b.writeInto(buf, pos);
    pos += b.bytes;
  }
  return pos;
}

const encoded = (b: PartitionBatch): BatchSource => ({
  partition: b.partition,
  bytes: b.batch.length,
  writeInto: (dst, pos) => void b.batch.copy(dst, pos),
});

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
  const sources = batches.map(encoded);
  const buf = Buffer.allocUnsafe(bodyBytes(topic, sources));
  writeBody(buf, 0, acks, timeoutMs, topic, sources);
  return buf;
}

/**
 * The whole frame of a Produce request as it goes on the wire: int32 size, request header v1
 * (api_key INT16, api_version INT16, correlation_id INT32, client_id NULLABLE_STRING), then the
 * body of encodeProduceRequest, with each batch written in place (no buffer per batch, no copy
 * of the request into a larger one), into a buffer of exactly its size from `allocate`.
 */
export function encodeProduceFrame(
  version: number,
  correlationId: number,
  clientId: string | null,
  acks: number,
  timeoutMs: number,
  topic: string,
  batches: readonly BatchSource[],
  allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
): Buffer {
  const clientBytes = clientId === null ? 0 : Buffer.byteLength(clientId, 'utf8');
  const size = 2 + 2 + 4 + 2 + clientBytes + bodyBytes(topic, batches);
  const buf = allocate(4 + size);
  let pos = buf.writeInt32BE(size, 0);
  pos = buf.writeInt16BE(PRODUCE_API_KEY, pos);
  pos = buf.writeInt16BE(version, pos);
  pos = buf.writeInt32BE(correlationId, pos);
  pos = buf.writeInt16BE(clientId === null ? -1 : clientBytes, pos);
  if (clientId !== null) pos += buf.write(clientId, pos, 'utf8');
  pos = writeBody(buf, pos, acks, timeoutMs, topic, batches);
  if (pos !== buf.length) throw new RangeError(`produce request is ${pos} bytes, planned ${buf.length}`);
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
