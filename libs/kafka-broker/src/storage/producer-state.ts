import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { PRIVATE_FILE_MODE } from '@pgferry/core';

/**
 * Idempotent-producer bookkeeping for one partition (KIP-98): per producer id, its epoch and its
 * last five batches' sequence ranges and offsets. A retried batch (same first and last sequence)
 * is answered with the offset it got the first time and not stored again; a gap is refused.
 */
export interface RecentBatch {
  firstSeq: number;
  lastSeq: number;
  baseOffset: bigint;
}

interface ProducerEntry {
  epoch: number;
  batches: RecentBatch[];
}

export type SequenceCheck =
  | { kind: 'append' }
  | { kind: 'duplicate'; baseOffset: bigint }
  | { kind: 'out-of-order'; message: string }
  | { kind: 'fenced'; message: string };

const KEEP = 5;
const INT32_MAX = 2 ** 31 - 1;

export class ProducerState {
  private producers = new Map<bigint, ProducerEntry>();

  check(producerId: bigint, epoch: number, firstSeq: number, lastSeq: number): SequenceCheck {
    if (producerId < 0n) return { kind: 'append' };
    const p = this.producers.get(producerId);
    if (!p || epoch > p.epoch) {
      return firstSeq === 0
        ? { kind: 'append' }
        : {
            kind: 'out-of-order',
            message: `producer ${producerId} epoch ${epoch} must start at sequence 0, got ${firstSeq}`,
          };
    }
    if (epoch < p.epoch)
      return {
        kind: 'fenced',
        message: `producer ${producerId} epoch ${epoch} is older than the current epoch ${p.epoch}`,
      };
    for (const b of p.batches)
      if (b.firstSeq === firstSeq && b.lastSeq === lastSeq)
        return { kind: 'duplicate', baseOffset: b.baseOffset };
    const last = p.batches[p.batches.length - 1];
    const expected = last ? (last.lastSeq === INT32_MAX ? 0 : last.lastSeq + 1) : 0;
    if (firstSeq !== expected)
      return {
        kind: 'out-of-order',
        message: `producer ${producerId}: expected sequence ${expected}, got ${firstSeq}`,
      };
    return { kind: 'append' };
  }

  record(producerId: bigint, epoch: number, firstSeq: number, lastSeq: number, baseOffset: bigint): void {
    if (producerId < 0n) return;
    let p = this.producers.get(producerId);
    if (!p || epoch !== p.epoch) {
      p = { epoch, batches: [] };
      this.producers.set(producerId, p);
    }
    p.batches.push({ firstSeq, lastSeq, baseOffset });
    if (p.batches.length > KEEP) p.batches.shift();
  }

  /** Snapshot written when a segment rolls and on close; the active segment is replayed over it. */
  save(path: string, upToOffset: bigint): void {
    const data = {
      upToOffset: upToOffset.toString(),
      producers: [...this.producers].map(([id, p]) => ({
        id: id.toString(),
        epoch: p.epoch,
        batches: p.batches.map((b) => ({ ...b, baseOffset: b.baseOffset.toString() })),
      })),
    };
    writeFileSync(`${path}.tmp`, JSON.stringify(data), { mode: PRIVATE_FILE_MODE });
    renameSync(`${path}.tmp`, path);
  }

  /** Loads a snapshot; returns the offset it covers (batches below it are already in). */
  load(path: string): bigint {
    if (!existsSync(path)) return 0n;
    try {
      const data = JSON.parse(readFileSync(path, 'utf8'));
      for (const p of data.producers) {
        this.producers.set(BigInt(p.id), {
          epoch: p.epoch,
          batches: p.batches.map((b: { firstSeq: number; lastSeq: number; baseOffset: string }) => ({
            ...b,
            baseOffset: BigInt(b.baseOffset),
          })),
        });
      }
      return BigInt(data.upToOffset);
    } catch {
      this.producers.clear();
      return 0n;
    }
  }
}
