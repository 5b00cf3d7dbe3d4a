/**
 * Every change record the capture publishes carries its stream position in the Kafka header
 * `pgferry.pos`: the source commit LSN of its transaction (8 bytes) and its number among the
 * records published for that transaction (4 bytes), big-endian, so byte order is stream order.
 * Within a partition positions only grow, and a record sent again after a capture restart (the
 * slot re-delivers transactions not yet confirmed) carries the same position as the first
 * time: the applier skips a record at or below the last position it applied in that partition.
 * This makes re-sent changes harmless for tables without a key too, where applying an insert
 * twice would duplicate the row.
 */
export const STREAM_POSITION_HEADER = 'pgferry.pos';

export function streamPosition(commitLsn: bigint, seq: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.writeBigUInt64BE(commitLsn, 0);
  b.writeUInt32BE(seq >>> 0, 8);
  return b;
}
