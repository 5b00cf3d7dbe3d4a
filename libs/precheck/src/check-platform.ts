import { lz4IsNative, type TaskSpec } from '@pgferry/core';
import type { PrecheckItem } from './precheck-report';

/** Checks of the machine pgferry runs on. Pure (the platform's facts are arguments). */

/**
 * The snapshot's compression (options.snapshotCompression): lz4 needs lz4-napi's native binary;
 * without it the snapshot would go through Kafka uncompressed, about five times the bytes, so
 * that is an alert to acknowledge or to clear by choosing none. Null for a task without a
 * snapshot.
 */
export function checkSnapshotCompression(
  spec: TaskSpec,
  native = lz4IsNative,
  platform = `${process.platform}-${process.arch}`,
): PrecheckItem | null {
  if (!spec.migrationTypes.full) return null;
  const base = { id: 'compression', name: 'compression' };
  if (spec.options.snapshotCompression === 'none')
    return {
      ...base,
      level: 'passed',
      message: 'options.snapshotCompression is none: snapshot record batches go through Kafka uncompressed',
    };
  if (native)
    return {
      ...base,
      level: 'passed',
      message: 'snapshot record batches go through Kafka LZ4-compressed (lz4-napi, native)',
    };
  return {
    ...base,
    level: 'alert',
    message: `options.snapshotCompression is lz4, but lz4-napi's native binary did not load on this platform (${platform}): the snapshot would go through Kafka uncompressed, about five times the bytes; run npm ci on this platform so that its binary is installed, or set options.snapshotCompression to none`,
    fix: '"options": { "snapshotCompression": "none" }',
  };
}
