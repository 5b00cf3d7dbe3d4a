import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBatch, decodeRecords, readBatchHeader } from '@pgferry/kafka-protocol';
import { compactPartition } from './compactor';
import { PartitionLog } from './partition-log';
import { DEFAULT_TOPIC_CONFIG, parseTopicConfig, type TopicConfig } from './topic-config';

function config(entries: Record<string, string>): TopicConfig {
  const c = parseTopicConfig(
    Object.entries(entries).map(([name, value]) => ({ name, value })),
    DEFAULT_TOPIC_CONFIG,
  );
  if ('error' in c) throw new Error(c.error);
  return c;
}

function append(log: PartitionLog, key: string, value: string | null, timestamp = BigInt(Date.now())) {
  const b = buildBatch([
    { key: Buffer.from(key), value: value === null ? null : Buffer.from(value), timestamp },
  ]);
  return log.append(b, readBatchHeader(b)).baseOffset;
}

function readAll(log: PartitionLog): Array<{ offset: bigint; key: string; value: string | null }> {
  const out: Array<{ offset: bigint; key: string; value: string | null }> = [];
  let offset = log.logStartOffset;
  while (offset < log.highWatermark) {
    const chunk = log.read(offset, 1 << 20);
    if (!chunk.length) break;
    let pos = 0;
    while (pos < chunk.length) {
      const h = readBatchHeader(chunk, pos);
      for (const r of decodeRecords(chunk, pos))
        if (r.offset >= offset)
          out.push({ offset: r.offset, key: r.key!.toString(), value: r.value && r.value.toString() });
      offset = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
      pos += h.size;
    }
  }
  return out;
}

describe('partition log', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pgferry-plog-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('rolls segments at segment.bytes and reads across them after reopening', () => {
    let log = new PartitionLog(dir, config({ 'segment.bytes': '300' }));
    for (let i = 0; i < 20; i++) append(log, `k${i}`, `v${i}`);
    log.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.log')).length).toBeGreaterThan(3);
    log = new PartitionLog(dir, config({ 'segment.bytes': '300' }));
    expect(log.highWatermark).toBe(20n);
    expect(readAll(log).map((r) => r.value)).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`));
    expect(readAll(log).map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i)));
    log.close();
  });

  it('recovers every batch when the index lags the log or ends torn (it is not fsynced)', () => {
    let log = new PartitionLog(dir, DEFAULT_TOPIC_CONFIG);
    for (let i = 0; i < 10; i++) append(log, `k${i}`, `v${i}`);
    log.close();
    const index = join(
      dir,
      readdirSync(dir).find((f) => f.endsWith('.index'))!,
    );
    const whole = statSync(index).size;
    // A crash after the log's fsync: the index kept 4 of 10 entries and a torn fifth.
    truncateSync(index, 4 * 24 + 7);
    log = new PartitionLog(dir, DEFAULT_TOPIC_CONFIG);
    expect(log.recovery).toEqual({ truncatedBytes: 0, rebuiltEntries: 6 });
    expect(log.highWatermark).toBe(10n);
    expect(readAll(log).map((r) => `${r.offset}=${r.value}`)).toEqual(
      Array.from({ length: 10 }, (_, i) => `${i}=v${i}`),
    );
    expect(statSync(index).size).toBe(whole);
    expect(append(log, 'k10', 'v10')).toBe(10n);
    log.close();
    // An index of zeros (pages the crash never wrote) is rebuilt the same way.
    writeFileSync(index, Buffer.alloc(whole));
    log = new PartitionLog(dir, DEFAULT_TOPIC_CONFIG);
    expect(log.recovery.rebuiltEntries).toBe(11);
    expect(readAll(log).map((r) => r.value)).toEqual(Array.from({ length: 11 }, (_, i) => `v${i}`));
    log.close();
  });

  it('deletes old segments by retention.ms and by retention.bytes, never the active one', () => {
    const log = new PartitionLog(dir, config({ 'segment.bytes': '300', 'retention.ms': '60000' }));
    const old = BigInt(Date.now() - 3_600_000);
    for (let i = 0; i < 10; i++) append(log, `old${i}`, 'x', old);
    for (let i = 0; i < 4; i++) append(log, `new${i}`, 'y');
    expect(log.applyRetention()).toBeGreaterThan(0);
    expect(readAll(log).every((r) => !r.key.startsWith('old') || r.offset >= log.logStartOffset)).toBe(true);
    expect(readAll(log).filter((r) => r.key.startsWith('new'))).toHaveLength(4);
    expect(log.logStartOffset).toBeGreaterThan(0n);

    log.config = config({ 'segment.bytes': '300', 'retention.bytes': '400' });
    log.applyRetention();
    expect(log.sizeBytes).toBeLessThanOrEqual(400 + 300);
    expect(log.highWatermark).toBe(14n);
    log.close();
  });

  it('compacts closed segments to the latest value per key, keeping offsets, and drops expired tombstones', () => {
    const log = new PartitionLog(
      dir,
      config({ 'segment.bytes': '200', 'cleanup.policy': 'compact', 'delete.retention.ms': '0' }),
    );
    const old = BigInt(Date.now() - 60_000);
    for (let round = 0; round < 5; round++)
      for (const k of ['a', 'b', 'c']) append(log, k, `${k}${round}`, old);
    append(log, 'b', null, old);
    for (let i = 0; i < 3; i++) append(log, 'z', `z${i}`);
    const result = compactPartition(log, Date.now());
    expect(result.recordsRemoved).toBeGreaterThan(0);
    const after = readAll(log);
    expect(after.filter((r) => r.key === 'a').map((r) => r.value)).toEqual(['a4']);
    expect(after.filter((r) => r.key === 'c').map((r) => r.value)).toEqual(['c4']);
    expect(after.filter((r) => r.key === 'b')).toEqual([]);
    // z0 and z1 sit in closed segments and z2 supersedes them; z2 itself is in the active segment.
    expect(after.filter((r) => r.key === 'z').map((r) => r.value)).toEqual(['z2']);
    expect(after.find((r) => r.value === 'a4')?.offset).toBe(12n);
    expect(log.highWatermark).toBe(19n);
    expect(compactPartition(log, Date.now()).recordsRemoved).toBe(0);
    log.close();
  });

  it('compacts lz4 batches record by record and keeps the batches it rewrites lz4', () => {
    const log = new PartitionLog(
      dir,
      config({ 'segment.bytes': '300', 'cleanup.policy': 'compact', 'delete.retention.ms': '0' }),
    );
    const old = BigInt(Date.now() - 60_000);
    const rec = (key: string, value: string) => ({
      key: Buffer.from(key),
      value: Buffer.from(value),
      timestamp: old,
    });
    // Each batch carries a key that is overwritten later and one that is not.
    for (let round = 0; round < 6; round++) {
      const b = buildBatch([rec('hot', `hot${round}`), rec(`cold${round}`, `c${round}`)], {
        compression: 'lz4',
      });
      log.append(b, readBatchHeader(b));
    }
    for (let i = 0; i < 3; i++) append(log, 'tail', `t${i}`);
    expect(compactPartition(log, Date.now()).recordsRemoved).toBeGreaterThan(0);
    const after = readAll(log);
    expect(after.filter((r) => r.key === 'hot').map((r) => r.value)).toEqual(['hot5']);
    expect(after.filter((r) => r.key.startsWith('cold')).map((r) => r.value)).toEqual([
      'c0',
      'c1',
      'c2',
      'c3',
      'c4',
      'c5',
    ]);
    const rewritten = log
      .closedSegments()
      .flatMap((seg) => seg.entries.map((e) => readBatchHeader(seg.readRange(e.pos, e.size))))
      .filter((h) => h.recordCount === 1 && h.lastOffsetDelta === 1);
    expect(rewritten.length).toBeGreaterThan(0);
    expect(rewritten.every((h) => h.compression === 3)).toBe(true);
    log.close();
  });
});
