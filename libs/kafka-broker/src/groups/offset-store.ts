import {
  closeSync,
  existsSync,
  fdatasync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { promisify } from 'node:util';
import { PRIVATE_FILE_MODE } from '@pgferry/core';

const fdatasyncP = promisify(fdatasync);

export interface CommittedOffset {
  offset: bigint;
  leaderEpoch: number;
  metadata: string | null;
  commitTimestamp: number;
}

/**
 * Committed consumer-group offsets, durable: each commit is one JSON line appended to
 * `offsets.log` before the commit is acknowledged (and fsynced with the broker's flush policy).
 * On open the log is replayed (last write wins; a torn last line is ignored) and rewritten compact.
 */
export class OffsetStore {
  private readonly groups = new Map<string, Map<string, CommittedOffset>>();
  private fd: number;
  private dirty = false;

  constructor(private readonly path: string) {
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          const e = JSON.parse(line) as {
            g: string;
            t: string;
            p: number;
            o: string | null;
            e: number;
            m: string | null;
            ts: number;
          };
          if (e.o === null) this.groups.get(e.g)?.delete(`${e.t}\u0000${e.p}`);
          else
            this.put(e.g, e.t, e.p, {
              offset: BigInt(e.o),
              leaderEpoch: e.e,
              metadata: e.m,
              commitTimestamp: e.ts,
            });
        } catch {
          break;
        }
      }
    }
    const compact: string[] = [];
    for (const [g, offsets] of this.groups) {
      for (const [tp, c] of offsets) {
        const [t, p] = tp.split('\u0000');
        compact.push(this.line(g, t, Number(p), c));
      }
    }
    writeFileSync(`${path}.tmp`, compact.join(''), { mode: PRIVATE_FILE_MODE });
    renameSync(`${path}.tmp`, path);
    this.fd = openSync(path, 'a', PRIVATE_FILE_MODE);
  }

  private line(g: string, t: string, p: number, c: CommittedOffset | null): string {
    return `${JSON.stringify({ g, t, p, o: c ? c.offset.toString() : null, e: c?.leaderEpoch ?? -1, m: c?.metadata ?? null, ts: c?.commitTimestamp ?? 0 })}\n`;
  }

  private put(group: string, topic: string, partition: number, c: CommittedOffset): void {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    g.set(`${topic}\u0000${partition}`, c);
  }

  commit(
    group: string,
    entries: Array<{ topic: string; partition: number; committed: CommittedOffset }>,
  ): void {
    if (entries.length === 0) return;
    writeSync(this.fd, entries.map((e) => this.line(group, e.topic, e.partition, e.committed)).join(''));
    for (const e of entries) this.put(group, e.topic, e.partition, e.committed);
    this.dirty = true;
  }

  get(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(group)?.get(`${topic}\u0000${partition}`);
  }

  all(group: string): Array<{ topic: string; partition: number; committed: CommittedOffset }> {
    return [...(this.groups.get(group) ?? new Map<string, CommittedOffset>())].map(([tp, committed]) => {
      const [topic, p] = tp.split('\u0000');
      return { topic, partition: Number(p), committed };
    });
  }

  groupIds(): string[] {
    return [...this.groups.keys()].filter((g) => (this.groups.get(g)?.size ?? 0) > 0);
  }

  /** Forgets the offsets of a deleted topic. */
  deleteTopic(topic: string): void {
    for (const [g, offsets] of this.groups) {
      for (const tp of [...offsets.keys()]) {
        if (tp.startsWith(`${topic}\u0000`)) {
          writeSync(this.fd, this.line(g, topic, Number(tp.split('\u0000')[1]), null));
          offsets.delete(tp);
        }
      }
    }
  }

  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    await fdatasyncP(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}
