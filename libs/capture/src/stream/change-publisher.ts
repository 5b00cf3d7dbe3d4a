import type { Client } from 'pg';
import { DataError } from '@pgferry/core';
import { quoteQualified, describeStreamColumns, type ColumnInfo } from '@pgferry/pg';
import {
  ChangeEncoder,
  type ChangeMeta,
  buildSchemas,
  STREAM_POSITION_HEADER,
  streamPosition,
  transactionId,
  type TransactionRecords,
} from '@pgferry/avro';
import type { RegistryClient, HeartbeatRecords } from '@pgferry/avro';
import { keyPartition, type KafkaProducer, type ProducerRecord } from '@pgferry/kafka';
import { splitUnchanged, type ChangeEvent, type RelationInfo } from '../change-event';
import type { ChangeProcessor } from '../interface';
import type { Lsn } from '@pgferry/pg';
import { ddlEventFromRow, isDdlTable, type DdlEvent } from '../ddl/pg-ddl-capture';
import { isHeartbeatTable } from './pg-heartbeat';
import type { StreamMark } from '@pgferry/control';

/** One published table: its topic and the key the snapshot used. */
export interface PublishedTable {
  schema: string;
  table: string;
  topic: string;
  key: string[];
}

export interface ChangePublisherOptions {
  producer: KafkaProducer;
  registry: RegistryClient;
  /** A source connection: describes a table again after a schema change. */
  source: Client;
  prefix: string;
  sourceDb: string;
  partitions: number;
  tables: PublishedTable[];
  /** Called with a commit's end LSN (or an idle keepalive's LSN) once Kafka acknowledged everything before it. */
  confirm: (lsn: Lsn) => void;
  /** Messages buffered before they are sent, even mid-transaction (bounded memory; default 5000). */
  maxBuffered?: number;
  /**
   * How long a commit's records wait for later transactions to join the same produce request
   * (ms, default 5). Small transactions are then sent many to a request instead of one round
   * trip each; the commits are confirmed together once Kafka acknowledged the request.
   */
  lingerMs?: number;
  /**
   * Next offsets of the topics' partitions ("topic:partition") when this publisher starts: the
   * high watermarks, which cover everything confirmed before. Stream marks start from them.
   */
  startOffsets?: ReadonlyMap<string, bigint>;
  /** Called after each commit is confirmed, with the position the destination must reach to hold it. */
  onCommit?: (mark: StreamMark) => void;
  /**
   * Schema changes captured on the source (the task's DDL table, see installDdlCapture): the
   * stream stops at each one until `apply` resolves. `apply` gets the partition ends that hold
   * every record before the statement: it must wait until the destination applied them, run
   * the statement there, and only then is anything after it published.
   */
  ddl?: { task: string; apply: (event: DdlEvent, ends: ReadonlyMap<string, bigint>) => Promise<void> };
  /**
   * The transaction metadata topic (one partition, so it is in commit order) and its encoder
   * (schemas registered): BEGIN before a transaction's first change record, END with per-table
   * counts after its last. Transactions that touch no selected table get neither.
   */
  transactions?: { topic: string; records: TransactionRecords };
  /**
   * The heartbeat topic (one partition) and its encoder (schemas registered): a record for every
   * change of the task's heartbeat table, with the beat's commit time.
   */
  heartbeat?: { task: string; topic: string; records: HeartbeatRecords };
  /**
   * Called once for each table outside `tables` whose changes the stream carries (other than
   * the task's DDL table): a table created after the task started that the source added to the
   * publication. Returns how to publish it (its topic created, its key known), or null to pass
   * its changes over as before (the heartbeat table, a table no longer selected).
   */
  addTable?: (relation: RelationInfo) => Promise<PublishedTable | null>;
  /**
   * The destination applies whole source transactions (options.consistency transactional): a
   * schema change after row changes in the same source transaction cannot be applied between
   * transactions, and stops the stream with the statement instead of waiting forever.
   */
  wholeTransactions?: boolean;
}

/**
 * Bytes buffered before sending: one produce request stays below the broker's default
 * message.max.bytes (1 MB) whatever the row sizes, since a request's records for one partition
 * form one batch.
 */
const MAX_BUFFERED_BYTES = 512 * 1024;
/** Sent but not yet acknowledged bytes before `process` waits for Kafka (back-pressure). */
const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024;
/** A commit waits at most this long for more transactions to share its produce request. */
const DEFAULT_LINGER_MS = 5;

interface TableCodec {
  columns: ColumnInfo[];
  encoder: ChangeEncoder;
}

/**
 * The capture's encode-and-publish stage for the stream: turns change events into Debezium
 * records on the table topics (the snapshot's schemas and partitioning: same key, same
 * partition), a tombstone after each delete, and a truncate on every partition of the table's
 * topic. Confirms a commit's end LSN to the slot only after Kafka acknowledged (acks = all) every
 * record of it and of the transactions before it.
 *
 * Records are sent in produce requests of up to 512 kB that follow each other in order (one at a
 * time, so Kafka keeps their order), while the next events are encoded: a commit is not waited
 * for, only confirmed when its request is acknowledged, and small transactions share requests
 * (see `lingerMs`). Memory stays bounded: a large transaction is sent in parts while it is open,
 * and `process` waits when more than 4 MB are unacknowledged. If the capture dies before a commit
 * is confirmed, the slot streams the transaction again and it is sent again with the same
 * stream positions (header pgferry.pos), which the applier skips.
 * Events of tables outside `tables` (the heartbeat and DDL tables) only move the position, unless
 * `addTable` gives the table a topic (a table created on the source after the task started).
 */
export class ChangePublisher implements ChangeProcessor {
  private readonly byName = new Map<string, PublishedTable>();
  /** Tables outside `tables` that addTable declined, by name: asked once. */
  private readonly declined = new Set<string>();
  private readonly codecs = new Map<string, Promise<TableCodec>>();
  private readonly ready = new Map<string, { relation: RelationInfo; codec: TableCodec }>();
  private buffer: Array<{ topic: string; message: ProducerRecord }> = [];
  private bufferedBytes = 0;
  private tx: {
    xid: number;
    order: number;
    commitTime: Date;
    finalLsn: Lsn;
    seq: number;
    /** Events per published table ("schema.table"), once BEGIN is out. */
    counts: Map<string, number> | null;
  } | null = null;
  /** The table topics: only their partitions are in the stream marks. */
  private readonly tableTopics: Set<string>;
  private readonly ends: Map<string, bigint>;
  /** The newest commit whose records are all sent or buffered, not yet handed to a request. */
  private pendingCommit: { endLsn: Lsn; commitTime: Date } | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  /** The chain of produce requests and confirmations, in stream order. */
  private sending: Promise<void> = Promise.resolve();
  private inFlightBytes = 0;
  private failure: Error | null = null;
  published = 0;

  constructor(private readonly opts: ChangePublisherOptions) {
    for (const t of opts.tables) this.byName.set(`${t.schema}\u0000${t.table}`, t);
    this.ends = new Map(opts.startOffsets ?? []);
    this.tableTopics = new Set(opts.tables.map((t) => t.topic));
  }

  async process(event: ChangeEvent): Promise<void> {
    if (this.failure) throw this.failure;
    switch (event.kind) {
      case 'begin':
        this.tx = {
          xid: event.xid,
          order: 0,
          commitTime: event.commitTime,
          finalLsn: event.finalLsn,
          seq: 0,
          counts: null,
        };
        return;
      case 'relation':
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const ddl = this.opts.ddl;
        if (ddl && isDdlTable(ddl.task, event.relation.schema, event.relation.table)) {
          if (event.kind === 'insert')
            await this.schemaChange(event.relation, splitUnchanged(event.relation, event.new).texts);
          return;
        }
        const table =
          this.byName.get(`${event.relation.schema}\u0000${event.relation.table}`) ??
          (this.heartbeat(event) ? null : await this.gained(event.relation));
        if (!table) return;
        const codec = await this.codec(table, event.relation);
        this.counted(table);
        const meta = this.meta(event.lsn, event.xid);
        const partitionOf = (key: Buffer | null) => (key ? keyPartition(key, this.opts.partitions) : 0);
        if (event.kind === 'insert') {
          const after = splitUnchanged(event.relation, event.new);
          const r = codec.encoder.encode('c', null, after.texts, [], meta);
          this.push(table.topic, r.key, r.value, partitionOf(r.key));
        } else if (event.kind === 'update') {
          const after = splitUnchanged(event.relation, event.new);
          const old = event.old ? splitUnchanged(event.relation, event.old) : null;
          const before = old ? old.texts : null;
          if (old && event.oldKind === 'full' && after.unchanged.length) {
            // REPLICA IDENTITY FULL logs the old row with its TOASTed values: an unchanged
            // column's value is right there, so the record carries it and nothing is unsent.
            after.unchanged = after.unchanged.filter((name) => {
              const i = event.relation.columns.findIndex((c) => c.name === name);
              if (old.unchanged.includes(name)) return true;
              after.texts[i] = old.texts[i];
              return false;
            });
          }
          const r = codec.encoder.encode('u', before, after.texts, after.unchanged, meta);
          this.push(table.topic, r.key, r.value, partitionOf(r.key));
          if (before && table.key.length) {
            // The key changed when the old key encodes differently. The old key's partition
            // gets a delete and a tombstone too, after the move and after that key's earlier
            // changes there, so a lagging partition cannot bring the old row back.
            const gone = codec.encoder.encode('d', before, null, [], meta);
            if (gone.key && r.key && !gone.key.equals(r.key)) {
              this.push(table.topic, gone.key, gone.value, partitionOf(gone.key));
              this.push(table.topic, gone.key, null, partitionOf(gone.key));
            }
          }
        } else {
          const before = splitUnchanged(event.relation, event.old).texts;
          const r = codec.encoder.encode('d', before, null, [], meta);
          this.push(table.topic, r.key, r.value, partitionOf(r.key));
          if (r.key) this.push(table.topic, r.key, null, partitionOf(r.key));
        }
        break;
      }
      case 'truncate':
        for (const rel of event.relations) {
          const table = this.byName.get(`${rel.schema}\u0000${rel.table}`) ?? (await this.gained(rel));
          if (!table) continue;
          const codec = await this.codec(table, rel);
          this.counted(table);
          const r = codec.encoder.encodeTruncate(this.meta(event.lsn, event.xid));
          // Every partition gets it: the applier applies it once and drops older changes.
          for (let p = 0; p < this.opts.partitions; p++) this.push(table.topic, null, r.value, p);
        }
        break;
      case 'commit':
        if (this.tx?.counts && this.opts.transactions) {
          const { topic, records } = this.opts.transactions;
          const r = records.encode(
            'END',
            transactionId(this.tx.xid, this.tx.finalLsn),
            this.tx.commitTime.getTime(),
            this.tx.counts,
          );
          this.push(topic, r.key, r.value, 0);
        }
        this.tx = null;
        this.pendingCommit = { endLsn: event.endLsn, commitTime: event.commitTime };
        if (this.full()) return this.send();
        // Later transactions may join this request; the timer sends it if none come soon.
        this.lingerTimer ??= setTimeout(() => {
          this.lingerTimer = null;
          if (!this.tx) void this.send().catch(() => undefined);
        }, this.opts.lingerMs ?? DEFAULT_LINGER_MS);
        return;
      case 'keepalive':
        // Nothing open and nothing waiting: the position can move once the requests before are done.
        if (!this.tx && this.buffer.length === 0 && !this.pendingCommit) {
          const lsn = event.lsn;
          this.sending = this.sending.then(() => this.opts.confirm(lsn));
        }
        return;
    }
    if (this.full()) await this.send();
  }

  /** A change of the heartbeat table becomes a record of the heartbeat topic; true when it was one. */
  private heartbeat(event: { kind: string; relation: RelationInfo }): boolean {
    const beat = this.opts.heartbeat;
    if (!beat || !isHeartbeatTable(beat.task, event.relation.schema, event.relation.table)) return false;
    if (event.kind !== 'delete') {
      const r = beat.records.encode((this.tx?.commitTime ?? new Date()).getTime());
      // No stream position: the beat's transaction has no BEGIN or END and no table changes.
      this.buffer.push({ topic: beat.topic, message: { key: r.key, value: r.value, partition: 0 } });
      this.bufferedBytes += r.key.length + r.value.length;
    }
    return true;
  }

  /** A table outside `tables` whose changes the stream carries: published from now on, or null. */
  private async gained(relation: RelationInfo): Promise<PublishedTable | null> {
    const name = `${relation.schema}\u0000${relation.table}`;
    if (!this.opts.addTable || this.declined.has(name)) return null;
    const added = await this.opts.addTable(relation);
    if (!added) {
      this.declined.add(name);
      return null;
    }
    this.byName.set(name, added);
    this.tableTopics.add(added.topic);
    return added;
  }

  /**
   * A barrier: everything before the statement is sent and acknowledged, the destination
   * applies it and then the statement; records after it (in the new shape) follow only then.
   */
  private async schemaChange(relation: RelationInfo, row: Array<string | null>): Promise<void> {
    const event = ddlEventFromRow(
      relation.columns.map((c) => c.name),
      row,
    );
    if (!event)
      throw new DataError(
        `a row of the DDL capture table ${quoteQualified(relation.schema, relation.table)} lacks id, tag or command; the capture objects were changed by hand: run migrate again to reinstall them`,
      );
    if (this.opts.wholeTransactions && this.tx?.counts)
      throw new DataError(
        `schema change ${JSON.stringify(event.command)} follows row changes in the same source transaction (xid ${this.tx.xid}); with options.consistency transactional each source transaction is applied whole, and a schema change can only be applied between transactions. Set options.consistency to per-key and run migrate again to carry it, and run schema changes in transactions of their own`,
      );
    await this.send();
    await this.sending;
    if (this.failure) throw this.failure;
    await this.opts.ddl!.apply(event, new Map(this.ends));
  }

  private full(): boolean {
    return this.buffer.length >= (this.opts.maxBuffered ?? 5000) || this.bufferedBytes >= MAX_BUFFERED_BYTES;
  }

  /**
   * Hands the buffer (and the commit it completes, if any) to the request chain, then waits only
   * when too much is unacknowledged. A failed request fails every later `process`.
   */
  private async send(): Promise<void> {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    const batch = this.buffer;
    const bytes = this.bufferedBytes;
    const commit = this.pendingCommit;
    this.buffer = [];
    this.bufferedBytes = 0;
    this.pendingCommit = null;
    if (batch.length === 0 && !commit) return;
    this.inFlightBytes += bytes;
    this.sending = this.sending.then(async () => {
      if (this.failure) return;
      try {
        if (batch.length) await this.produce(batch);
        if (commit) {
          this.opts.confirm(commit.endLsn);
          this.opts.onCommit?.({ lsn: commit.endLsn, commitTime: commit.commitTime, ends: this.ends });
        }
      } catch (err) {
        this.failure = err instanceof Error ? err : new Error(String(err));
      } finally {
        this.inFlightBytes -= bytes;
      }
    });
    if (this.inFlightBytes > MAX_IN_FLIGHT_BYTES) await this.sending;
    if (this.failure) throw this.failure;
  }

  /** Counts a change of `table` in the open transaction; the first one is preceded by BEGIN. */
  private counted(table: PublishedTable): void {
    const tx = this.tx;
    const txs = this.opts.transactions;
    if (!tx || !txs) return;
    if (!tx.counts) {
      tx.counts = new Map();
      const r = txs.records.encode('BEGIN', transactionId(tx.xid, tx.finalLsn), tx.commitTime.getTime());
      this.push(txs.topic, r.key, r.value, 0);
    }
    const name = `${table.schema}.${table.table}`;
    tx.counts.set(name, (tx.counts.get(name) ?? 0) + 1);
  }

  private meta(lsn: Lsn, xid: number): ChangeMeta {
    const order = this.tx ? ++this.tx.order : 0;
    return {
      lsn,
      txId: xid,
      tsMs: (this.tx?.commitTime ?? new Date()).getTime(),
      // One id for every change of the transaction: its xid and its commit LSN.
      transaction: {
        id: transactionId(xid, this.tx?.finalLsn ?? lsn),
        totalOrder: order,
        dataCollectionOrder: order,
      },
    };
  }

  private push(topic: string, key: Buffer | null, value: Buffer | null, partition: number): void {
    const headers = this.tx
      ? [{ key: STREAM_POSITION_HEADER, value: streamPosition(this.tx.finalLsn, ++this.tx.seq) }]
      : undefined;
    this.buffer.push({ topic, message: { key, value, partition, headers } });
    this.bufferedBytes += (key?.length ?? 0) + (value?.length ?? 0);
  }

  /** Sends one request's records and resolves when Kafka acknowledged all of them. */
  private async produce(batch: Array<{ topic: string; message: ProducerRecord }>): Promise<void> {
    const byTopic = new Map<string, ProducerRecord[]>();
    for (const { topic, message } of batch) {
      const list = byTopic.get(topic);
      if (list) list.push(message);
      else byTopic.set(topic, [message]);
    }
    const ends = await this.opts.producer.publishAll(
      [...byTopic].map(([topic, records]) => ({ topic, records })),
    );
    for (const [k, end] of ends) {
      if (!this.tableTopics.has(k.slice(0, k.lastIndexOf(':')))) continue;
      if (end > (this.ends.get(k) ?? 0n)) this.ends.set(k, end);
    }
    this.published += batch.length;
  }

  /**
   * The table's encoder, with the snapshot's schemas while the source's columns stay the same;
   * after a schema change the table is described again and a new schema version registered.
   */
  private async codec(table: PublishedTable, relation: RelationInfo): Promise<TableCodec> {
    const name = `${table.schema}\u0000${table.table}`;
    // The decoder keeps one RelationInfo per table until the source describes it anew, so the
    // per-event check is an identity test; column names are compared only on a new description.
    const ready = this.ready.get(name);
    if (ready?.relation === relation) return ready.codec;
    const shape = relation.columns.map((c) => c.name).join('\u0000');
    let pending = this.codecs.get(name);
    let codec = pending ? await pending : null;
    if (!codec || codec.columns.map((c) => c.name).join('\u0000') !== shape) {
      pending = this.describe(table, relation);
      this.codecs.set(name, pending);
      pending.catch(() => this.codecs.delete(name));
      codec = await pending;
    }
    this.ready.set(name, { relation, codec });
    return codec;
  }

  private async describe(table: PublishedTable, relation: RelationInfo): Promise<TableCodec> {
    // Generated columns are not in the stream; everything pgoutput sends is carried.
    const columns = await describeStreamColumns(
      this.opts.source,
      table.schema,
      table.table,
      relation.columns,
      table.key,
    );
    const schemas = buildSchemas(this.opts.prefix, table.schema, table.table, columns);
    const ids = {
      key: schemas.key ? await this.opts.registry.register(`${table.topic}-key`, schemas.key) : null,
      value: await this.opts.registry.register(`${table.topic}-value`, schemas.value),
    };
    return {
      columns,
      encoder: new ChangeEncoder(columns, schemas, ids, {
        name: this.opts.prefix,
        db: this.opts.sourceDb,
        schema: table.schema,
        table: table.table,
      }),
    };
  }
}
