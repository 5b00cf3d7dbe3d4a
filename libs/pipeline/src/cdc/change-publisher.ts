import type { Client } from 'pg';
import type { Message, Producer } from 'kafkajs';
import { DataError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import { ChangeEncoder, type ChangeMeta } from '../codec/change-encoder';
import { describeColumns, type ColumnInfo } from '../codec/pg-columns';
import type { RegistryClient } from '../codec/registry-client';
import { buildSchemas } from '../codec/table-codec';
import { keyPartition } from '../publish/kafka-partitioner';
import { splitUnchanged, type ChangeEvent, type RelationInfo } from './change-event';
import type { ChangeProcessor } from './interface';
import type { Lsn } from './lsn';

/** One published table: its topic and the key the snapshot used. */
export interface PublishedTable {
  schema: string;
  table: string;
  topic: string;
  key: string[];
}

export interface ChangePublisherOptions {
  producer: Producer;
  registry: RegistryClient;
  /** A source connection: describes a table again after a schema change. */
  source: Client;
  prefix: string;
  sourceDb: string;
  partitions: number;
  tables: PublishedTable[];
  /** Called with a commit's end LSN (or an idle keepalive's LSN) once Kafka acknowledged everything before it. */
  confirm: (lsn: Lsn) => void;
  /** Messages buffered before an open transaction is sent early (bounded memory; default 5000). */
  maxBuffered?: number;
}

/**
 * Bytes buffered before sending: one produce request stays below the broker's default
 * message.max.bytes (1 MB) whatever the row sizes, since a request's records for one partition
 * form one batch.
 */
const MAX_BUFFERED_BYTES = 512 * 1024;

interface TableCodec {
  columns: ColumnInfo[];
  encoder: ChangeEncoder;
}

/**
 * The capture's encode-and-publish stage for the stream: turns change events into Debezium
 * records on the table topics (the snapshot's schemas and partitioning: same key, same
 * partition), a tombstone after each delete, and a truncate on every partition of the table's
 * topic. Confirms a commit's end LSN to the slot only after Kafka acknowledged (acks = all) every
 * record of it and of the transactions before it. A large transaction is sent in parts while it
 * is open, so memory stays bounded; if the capture dies before the commit is confirmed, the
 * transaction is streamed and sent again, and the applier's apply-by-key makes the repeat harmless.
 * Events of tables outside `tables` (the heartbeat and DDL tables) only move the position.
 */
export class ChangePublisher implements ChangeProcessor {
  private readonly byName = new Map<string, PublishedTable>();
  private readonly codecs = new Map<string, Promise<TableCodec>>();
  private readonly ready = new Map<string, { relation: RelationInfo; codec: TableCodec }>();
  private buffer: Array<{ topic: string; message: Message }> = [];
  private bufferedBytes = 0;
  private tx: { xid: number; order: number; commitTime: Date } | null = null;
  published = 0;

  constructor(private readonly opts: ChangePublisherOptions) {
    for (const t of opts.tables) this.byName.set(`${t.schema}\u0000${t.table}`, t);
  }

  async process(event: ChangeEvent): Promise<void> {
    switch (event.kind) {
      case 'begin':
        this.tx = { xid: event.xid, order: 0, commitTime: event.commitTime };
        return;
      case 'relation':
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const table = this.byName.get(`${event.relation.schema}\u0000${event.relation.table}`);
        if (!table) return;
        const codec = await this.codec(table, event.relation);
        const meta = this.meta(event.lsn, event.xid);
        const partitionOf = (key: Buffer | null) => (key ? keyPartition(key, this.opts.partitions) : 0);
        if (event.kind === 'insert') {
          const after = splitUnchanged(event.relation, event.new);
          const r = codec.encoder.encode('c', null, after.texts, [], meta);
          this.push(table.topic, r.key, r.value, partitionOf(r.key));
        } else if (event.kind === 'update') {
          const after = splitUnchanged(event.relation, event.new);
          const before = event.old ? splitUnchanged(event.relation, event.old).texts : null;
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
          const table = this.byName.get(`${rel.schema}\u0000${rel.table}`);
          if (!table) continue;
          const codec = await this.codec(table, rel);
          const r = codec.encoder.encodeTruncate(this.meta(event.lsn, event.xid));
          // Every partition gets it: the applier applies it once and drops older changes.
          for (let p = 0; p < this.opts.partitions; p++) this.push(table.topic, null, r.value, p);
        }
        break;
      case 'commit':
        await this.flush();
        this.tx = null;
        this.opts.confirm(event.endLsn);
        return;
      case 'keepalive':
        if (!this.tx && this.buffer.length === 0) this.opts.confirm(event.lsn);
        return;
    }
    if (this.buffer.length >= (this.opts.maxBuffered ?? 5000) || this.bufferedBytes >= MAX_BUFFERED_BYTES)
      await this.flush();
  }

  private meta(lsn: Lsn, xid: number): ChangeMeta {
    const order = this.tx ? ++this.tx.order : 0;
    return {
      lsn,
      txId: xid,
      tsMs: (this.tx?.commitTime ?? new Date()).getTime(),
      transaction: { id: `${xid}:${lsn}`, totalOrder: order, dataCollectionOrder: order },
    };
  }

  private push(topic: string, key: Buffer | null, value: Buffer | null, partition: number): void {
    this.buffer.push({ topic, message: { key, value, partition } });
    this.bufferedBytes += (key?.length ?? 0) + (value?.length ?? 0);
  }

  /** Sends what is buffered and resolves when Kafka acknowledged all of it. */
  private async flush(): Promise<void> {
    if (!this.buffer.length) return;
    const byTopic = new Map<string, Message[]>();
    for (const { topic, message } of this.buffer) {
      const list = byTopic.get(topic);
      if (list) list.push(message);
      else byTopic.set(topic, [message]);
    }
    await this.opts.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
    this.published += this.buffer.length;
    this.buffer = [];
    this.bufferedBytes = 0;
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
    const columns = await describeColumns(this.opts.source, table.schema, table.table, table.key);
    const names = relation.columns.map((c) => c.name);
    if (columns.map((c) => c.name).join('\u0000') !== names.join('\u0000'))
      throw new DataError(
        `the stream describes ${quoteQualified(table.schema, table.table)} with columns (${names.join(', ')}) but the source now has (${columns.map((c) => c.name).join(', ')}); a schema change is in flight: restart the capture to continue from the last confirmed position`,
        { retriable: true },
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
