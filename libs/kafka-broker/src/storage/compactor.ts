import { buildBatch, canDecode, decodeRecords, readBatchHeader, rebuildCodec } from '@pgferry/kafka-protocol';
import type { PartitionLog } from './partition-log';

export interface CompactionResult {
  segmentsRewritten: number;
  recordsRemoved: number;
}

/**
 * Log compaction for cleanup.policy=compact: in closed segments, keeps only the latest record of
 * each key (the latest anywhere in the log, the active segment included). Tombstones (null
 * values) are kept for delete.retention.ms after their segment's last write, then removed.
 * Offsets never change: a rewritten batch keeps its base offset and lastOffsetDelta, so
 * consumers' positions and committed offsets stay valid. Batches this process cannot decode
 * (snappy, lz4, zstd) and transactional or control batches are kept whole.
 * Idempotent: running it twice removes nothing more.
 */
const lastRun = new WeakMap<PartitionLog, { hw: bigint; tombstoneCheck: number }>();

export function compactPartition(log: PartitionLog, now = Date.now()): CompactionResult {
  const closed = log.closedSegments();
  if (closed.length === 0) return { segmentsRewritten: 0, recordsRemoved: 0 };
  // Nothing new since the last pass and no tombstone has come of age: skip the re-read.
  const previous = lastRun.get(log);
  if (
    previous &&
    previous.hw === log.highWatermark &&
    now - previous.tombstoneCheck < log.config.deleteRetentionMs
  ) {
    return { segmentsRewritten: 0, recordsRemoved: 0 };
  }
  lastRun.set(log, { hw: log.highWatermark, tombstoneCheck: now });
  const latest = new Map<string, bigint>();
  const segments = [...closed, ...activeOf(log)];
  for (const seg of segments) {
    for (const e of seg.entries) {
      const batch = seg.readRange(e.pos, e.size);
      const h = readBatchHeader(batch);
      if (!canDecode(h.compression) || h.isControl || h.isTransactional) continue;
      for (const r of decodeRecords(batch)) if (r.key) latest.set(r.key.toString('base64'), r.offset);
    }
  }
  let segmentsRewritten = 0;
  let recordsRemoved = 0;
  for (const seg of closed) {
    const tombstonesExpire = Number(seg.maxTimestamp) < now - log.config.deleteRetentionMs;
    const batches: Buffer[] = [];
    let removed = 0;
    for (const e of seg.entries) {
      const batch = seg.readRange(e.pos, e.size);
      const h = readBatchHeader(batch);
      if (!canDecode(h.compression) || h.isControl || h.isTransactional) {
        batches.push(batch);
        continue;
      }
      const records = decodeRecords(batch);
      const kept = records.filter((r) => {
        if (!r.key) return true;
        if (latest.get(r.key.toString('base64')) !== r.offset) return false;
        return !(r.value === null && tombstonesExpire);
      });
      removed += records.length - kept.length;
      if (kept.length === records.length) batches.push(batch);
      else if (kept.length > 0) {
        batches.push(
          buildBatch(kept, {
            baseOffset: h.baseOffset,
            lastOffsetDelta: h.lastOffsetDelta,
            producerId: h.producerId,
            producerEpoch: h.producerEpoch,
            baseSequence: h.baseSequence,
            compression: rebuildCodec(h.compression),
          }),
        );
      }
    }
    if (removed > 0) {
      log.replaceSegment(seg, { batches });
      segmentsRewritten++;
      recordsRemoved += removed;
    }
  }
  return { segmentsRewritten, recordsRemoved };
}

function activeOf(log: PartitionLog) {
  const closed = new Set(log.closedSegments());
  return log.allSegments().filter((s) => !closed.has(s));
}
