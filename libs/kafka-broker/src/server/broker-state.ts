import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makePrivateDir, PRIVATE_FILE_MODE } from '@pgferry/core';
import { GroupCoordinator } from '../groups/group-coordinator';
import { OffsetStore } from '../groups/offset-store';
import { TopicStore } from '../storage/topic-store';

export interface BrokerOptions {
  dataDir: string;
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Host name put in Metadata responses; defaults to `host`. */
  advertisedHost?: string;
  /** Port put in Metadata and FindCoordinator responses (a proxy or NAT in front); defaults to the listening port. */
  advertisedPort?: number;
  /** 'batch': fsync before acknowledging each produce request; a number: fsync every N ms. */
  flush?: 'batch' | number;
  autoCreateTopics?: boolean;
  defaultPartitions?: number;
  /** Largest request frame accepted (socket.request.max.bytes); larger closes the connection. */
  maxRequestBytes?: number;
  /** How often retention and compaction run. */
  cleanerIntervalMs?: number;
  /** Connections open at once (max.connections); one more is closed with a warning. */
  maxConnections?: number;
  /** A connection with no traffic for this long is closed (connections.max.idle.ms). */
  connectionIdleMs?: number;
  /**
   * Bytes of requests read but not yet handled, over all connections (queued.max.request.bytes):
   * past it, connections stop being read until handled requests give bytes back.
   */
  maxBufferedBytes?: number;
  /** The most a Fetch response carries, whatever the client asks for (fetch.max.bytes). */
  maxFetchBytes?: number;
}

/** Everything the handlers share: topics, groups, offsets, producer ids, identity. */
export class BrokerState {
  readonly topics: TopicStore;
  readonly offsets: OffsetStore;
  readonly groups = new GroupCoordinator();
  readonly clusterId: string;
  readonly nodeId = 0;
  host: string;
  port = 0;

  /** The port clients are told to connect to. */
  get advertisedPort(): number {
    return this.options.advertisedPort ?? this.port;
  }
  readonly options: Required<Omit<BrokerOptions, 'advertisedHost' | 'advertisedPort'>> & {
    advertisedHost?: string;
    advertisedPort?: number;
  };
  /** Where storage errors are told (the server's logger); see storageError. */
  warn: (message: string) => void = () => undefined;
  private lastWarned = new Map<string, { message: string; at: number }>();
  private nextProducerId: bigint;
  private producerIdLimit: bigint;
  private readonly metaPath: string;

  constructor(options: BrokerOptions) {
    this.options = {
      port: 0,
      host: '127.0.0.1',
      flush: 'batch',
      autoCreateTopics: true,
      defaultPartitions: 1,
      maxRequestBytes: 100 * 1024 * 1024,
      cleanerIntervalMs: 30_000,
      maxConnections: 1000,
      connectionIdleMs: 10 * 60_000,
      maxBufferedBytes: 256 * 1024 * 1024,
      maxFetchBytes: 64 * 1024 * 1024,
      ...options,
    };
    // The data is a full copy of the migrated tables: only the broker's user may read it.
    makePrivateDir(options.dataDir);
    this.metaPath = join(options.dataDir, 'broker.json');
    const meta = existsSync(this.metaPath) ? JSON.parse(readFileSync(this.metaPath, 'utf8')) : {};
    this.clusterId = meta.clusterId ?? randomBytes(16).toString('base64url').slice(0, 22);
    // Producer ids are handed out from a block reserved on disk first, so none is reused after a crash.
    this.nextProducerId = BigInt(meta.producerIdLimit ?? '1000');
    this.producerIdLimit = this.nextProducerId;
    this.saveMeta();
    this.host = this.options.advertisedHost ?? this.options.host;
    this.topics = new TopicStore(options.dataDir);
    this.offsets = new OffsetStore(join(options.dataDir, 'offsets.log'));
  }

  private saveMeta(): void {
    writeFileSync(
      `${this.metaPath}.tmp`,
      JSON.stringify({ clusterId: this.clusterId, producerIdLimit: this.producerIdLimit.toString() }),
      { mode: PRIVATE_FILE_MODE },
    );
    renameSync(`${this.metaPath}.tmp`, this.metaPath);
  }

  /**
   * Tells a storage error of `where` (a partition's directory) to the logger: once per message,
   * and again every 30 s while it lasts, not on every retried produce request.
   */
  storageError(where: string, message: string, now = Date.now()): void {
    const last = this.lastWarned.get(where);
    if (last && last.message === message && now - last.at < 30_000) return;
    this.lastWarned.set(where, { message, at: now });
    this.warn(message);
  }

  allocateProducerId(): bigint {
    if (this.nextProducerId >= this.producerIdLimit) {
      this.producerIdLimit = this.nextProducerId + 1000n;
      this.saveMeta();
    }
    return this.nextProducerId++;
  }

  async flush(): Promise<void> {
    await Promise.all([this.topics.flushAll(), this.offsets.flush()]);
  }

  close(): void {
    this.groups.close();
    this.topics.close();
    this.offsets.close();
  }
}
