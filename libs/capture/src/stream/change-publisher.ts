import { DataError } from '@pgferry/core';
import { quoteQualified } from '@pgferry/pg';
import {
  type ChangeEncoder,
  type ChangeMeta,
  type ChangeOp,
  RUN_HEADER,
  STREAM_POSITION_HEADER,
  transactionId,
  type TransactionRecords,
} from '@pgferry/avro';
import type { HeartbeatRecords } from '@pgferry/avro';
import { keyPartition } from '@pgferry/kafka';
import { splitUnchanged, type ChangeEvent, type DataEvent, type RelationInfo } from '../change-event';

type Texts = ReadonlyArray<string | null>;

import type { ChangeProcessor } from '../interface';
import type { Lsn } from '@pgferry/pg';
import { ddlEventFromRow, isDdlTable, type DdlEvent } from '../ddl/pg-ddl-capture';
import { heartbeatLagMs, isHeartbeatTable } from './pg-heartbeat';
import { PublishChain, type PublishChainOptions } from './publish-chain';
import { TableCodecs, type PublishedTable, type TableCodecsOptions } from './table-codecs';

/** A name as object_identity writes it: bare when it is a plain lower-case name, quoted otherwise. */
const identity = (name: string) =>
  /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;

export type { PublishedTable } from './table-codecs';

/**
 * How records are sent and confirmed (PublishChainOptions), how tables are described
 * (TableCodecsOptions), and what the stream publishes.
 */
export interface ChangePublisherOptions extends PublishChainOptions, TableCodecsOptions {
  /** The task's run (libs/control runs): every record carries it in header pgferry.run. */
  runId: string;
  partitions: number;
  tables: PublishedTable[];
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
 * The capture's encode-and-publish stage for the stream: turns change events into Debezium
 * records on the table topics (the snapshot's schemas and partitioning: same key, same
 * partition), a tombstone after each delete, and a truncate on every partition of the table's
 * topic. Confirms a commit's end LSN to the slot only after Kafka acknowledged (acks = all) every
 * record of it and of the transactions before it.
 *
 * Records are sent through a PublishChain (ordered produce requests of up to 4 MB, while the
 * next events are encoded; small transactions share requests, see `lingerMs`). Memory stays
 * bounded: a large transaction is sent in parts while it is open, and `process` waits when more
 * than 8 MB are unacknowledged. If the capture dies before a commit is confirmed, the slot
 * streams the transaction again and it is sent again with the same stream positions (header
 * pgferry.pos), which the applier skips.
 * Events of tables outside `tables` (the heartbeat and DDL tables) only move the position, unless
 * `addTable` gives the table a topic (a table created on the source after the task started).
 */
export class ChangePublisher implements ChangeProcessor {
  private readonly byName = new Map<string, PublishedTable>();
  /** Tables outside `tables` that addTable declined, by name: asked once. */
  private readonly declined = new Set<string>();
  private readonly codecs: TableCodecs;
  private readonly chain: PublishChain;
  /** The table and encoder of each prepared change, by the index its bytes carry. */
  private readonly prepared: Array<{ table: PublishedTable; encoder: ChangeEncoder }> = [];
  private readonly preparedIndex = new Map<ChangeEncoder, number>();
  private readonly position = { name: Buffer.from(STREAM_POSITION_HEADER), value: Buffer.alloc(12) };
  private tx: {
    xid: number;
    order: number;
    commitTimeMs: number;
    finalLsn: Lsn;
    seq: number;
    /** transactionId(xid, finalLsn), made once: every change of the transaction carries it. */
    id: string;
    /** Events per published table, once BEGIN is out (named "schema.table" in the END record). */
    counts: Map<PublishedTable, number> | null;
  } | null = null;

  constructor(private readonly opts: ChangePublisherOptions) {
    for (const t of opts.tables) this.byName.set(`${t.schema}\u0000${t.table}`, t);
    this.codecs = new TableCodecs(opts);
    // Every record carries the run (header pgferry.run): appliers refuse another run's records.
    this.chain = new PublishChain(
      opts,
      opts.tables.map((t) => t.topic),
      () => this.tx !== null,
      [{ name: Buffer.from(RUN_HEADER), value: Buffer.from(opts.runId, 'latin1') }],
    );
  }

  /** Records Kafka acknowledged since start. */
  get published(): number {
    return this.chain.published;
  }

  /** Row changes of streamed transactions encoded before their commit (see `prepare`), since start. */
  preparedChanges = 0;

  /**
   * How far behind the source the stream was at the last heartbeat's commit (ms), or null
   * before the first: the capture's lag. Kept here, not by a wrapper around the publisher, so
   * the reader is given the publisher itself (a wrapper without `prepare` once made every
   * streamed transaction wait for its commit to be encoded).
   */
  captureLagMs: number | null = null;

  /**
   * Changes not published because their table's include entry leaves their operation out
   * (objects.include[].operations), since start, by operation.
   */
  readonly skipped = { insert: 0, update: 0, delete: 0, truncate: 0, ddl: 0 };

  /**
   * A schema change is left out when every object it names is a table whose include entry
   * leaves ddl out (objects.include[].operations without ddl). Object names come as the event
   * trigger's object_identity gives them: quoted only where needed.
   */
  private skipsDdl(event: DdlEvent): boolean {
    if (!event.objects.length) return false;
    return event.objects.every((name) => {
      const table = this.opts.tables.find((t) => name === `${identity(t.schema)}.${identity(t.table)}`);
      return table?.operations !== undefined && !table.operations.includes('ddl');
    });
  }

  /** Counts and says yes when `table` leaves changes of `kind` out. */
  private skips(table: PublishedTable, kind: 'insert' | 'update' | 'delete' | 'truncate'): boolean {
    if (!table.operations || table.operations.includes(kind)) return false;
    this.skipped[kind]++;
    return true;
  }

  /**
   * Takes one event. The common ones (BEGIN, COMMIT, a row change of a table whose encoder fits
   * its description, a prepared change) are taken without a promise unless the buffer is full
   * and must be sent: a promise and an await per event were a good part of the capture's CPU
   * per source transaction. The rest (a new table or description, DDL, truncate, anything after
   * a failed request) go through processEvent.
   */
  process(event: ChangeEvent): Promise<void> | undefined {
    if (this.chain.failure) return this.processEvent(event);
    switch (event.kind) {
      case 'begin':
        this.begin(event);
        return undefined;
      case 'commit':
        return this.commit(event);
      case 'prepared':
        this.replayPrepared(event.data, event.lsn, event.xid);
        return this.chain.full() ? this.chain.send() : undefined;
      case 'insert':
      case 'update':
      case 'delete': {
        const table = this.byName.get(`${event.relation.schema}\u0000${event.relation.table}`);
        const codec = table && this.codecs.current(table, event.relation);
        if (!table || !codec) break;
        if (this.skips(table, event.kind)) return undefined;
        this.publishRow(event, table, codec.encoder);
        return this.chain.full() ? this.chain.send() : undefined;
      }
    }
    return this.processEvent(event);
  }

  private begin(event: Extract<ChangeEvent, { kind: 'begin' }>): void {
    this.tx = {
      xid: event.xid,
      order: 0,
      commitTimeMs: event.commitTime.getTime(),
      finalLsn: event.finalLsn,
      seq: 0,
      id: transactionId(event.xid, event.finalLsn),
      counts: null,
    };
    // The position header's first half is the transaction's; push writes the sequence.
    this.position.value.writeBigUInt64BE(event.finalLsn, 0);
  }

  private commit(event: Extract<ChangeEvent, { kind: 'commit' }>): Promise<void> | undefined {
    const lag = this.opts.heartbeat ? heartbeatLagMs(event, this.opts.heartbeat.task) : null;
    if (lag !== null) this.captureLagMs = lag;
    if (this.tx?.counts && this.opts.transactions) {
      const { topic, records } = this.opts.transactions;
      const counts = new Map<string, number>();
      for (const [t, n] of this.tx.counts) counts.set(`${t.schema}.${t.table}`, n);
      const r = records.encode('END', this.tx.id, this.tx.commitTimeMs, counts);
      this.push(topic, r.key, r.value, 0);
    }
    this.tx = null;
    return this.chain.commit(event.endLsn, event.commitTime);
  }

  /** A row change's records, encoded whole and buffered. */
  private publishRow(event: DataEvent, table: PublishedTable, encoder: ChangeEncoder): void {
    this.counted(table);
    const meta = this.meta(event.lsn, event.xid);
    this.rowRecords(
      event,
      table,
      (op, before, after, unchanged) => encoder.encode(op, before, after, unchanged, meta),
      (r, key, partition) => this.push(table.topic, key, r ? r.value : null, partition),
    );
  }

  private async processEvent(event: ChangeEvent): Promise<void> {
    if (this.chain.failure) throw this.chain.failure;
    switch (event.kind) {
      case 'begin':
        this.begin(event);
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
        if (!table || this.skips(table, event.kind)) return;
        const { encoder } = await this.codecs.codec(table, event.relation);
        this.publishRow(event, table, encoder);
        break;
      }
      case 'truncate':
        for (const rel of event.relations) {
          const table = this.byName.get(`${rel.schema}\u0000${rel.table}`) ?? (await this.gained(rel));
          if (!table || this.skips(table, 'truncate')) continue;
          const codec = await this.codecs.codec(table, rel);
          this.counted(table);
          const r = codec.encoder.encodeTruncate(this.meta(event.lsn, event.xid));
          // Every partition gets it: the applier applies it once and drops older changes.
          for (let p = 0; p < this.opts.partitions; p++) this.push(table.topic, null, r.value, p);
        }
        break;
      case 'commit':
        return this.commit(event);
      case 'keepalive':
        // Nothing open and nothing waiting: the position can move once the requests before are done.
        if (!this.tx && this.chain.idle) this.chain.confirmAfterSent(event.lsn);
        return;
    }
    if (this.chain.full()) await this.chain.send();
  }

  /**
   * The records of one row change, in order, each encoded by `encode` (whole, or prepared for
   * later) and handed to `emit` with its key and partition (null: a tombstone): the change; after
   * a delete, a tombstone; after an update that moved the key, the old key's delete and tombstone.
   */
  private rowRecords<R extends { key: Buffer | null }>(
    event: DataEvent,
    table: PublishedTable,
    encode: (op: ChangeOp, before: Texts | null, after: Texts | null, unchanged: readonly string[]) => R,
    emit: (record: R | null, key: Buffer | null, partition: number) => void,
  ): void {
    const partitions = this.opts.partitions;
    const partitionOf = (key: Buffer | null) => (key ? keyPartition(key, partitions) : 0);
    if (event.kind === 'insert') {
      const r = encode('c', null, splitUnchanged(event.relation, event.new).texts, []);
      emit(r, r.key, partitionOf(r.key));
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
      const r = encode('u', before, after.texts, after.unchanged);
      emit(r, r.key, partitionOf(r.key));
      if (before && table.key.length) {
        // The key changed when the old key encodes differently. The old key's partition
        // gets a delete and a tombstone too, after the move and after that key's earlier
        // changes there, so a lagging partition cannot bring the old row back.
        const gone = encode('d', before, null, []);
        if (gone.key && r.key && !gone.key.equals(r.key)) {
          emit(gone, gone.key, partitionOf(gone.key));
          emit(null, gone.key, partitionOf(gone.key));
        }
      }
    } else {
      const r = encode('d', splitUnchanged(event.relation, event.old).texts, null, []);
      emit(r, r.key, partitionOf(r.key));
      if (r.key) emit(null, r.key, partitionOf(r.key));
    }
  }

  /**
   * A row change of a streamed transaction, encoded while the transaction is open (see
   * ChangeProcessor.prepare): its records without their place in the stream, laid out as
   * `replayPrepared` reads them. Null (the change comes again at the commit, and is encoded then)
   * when its table has no topic or no encoder for this shape yet, or it does not encode (the
   * error is then reported at the commit, not for a transaction that may still abort).
   */
  prepare(event: DataEvent, reserved: number): Buffer | null {
    if (this.chain.failure) return null;
    const ddl = this.opts.ddl;
    if (ddl && isDdlTable(ddl.task, event.relation.schema, event.relation.table)) return null;
    const table = this.byName.get(`${event.relation.schema}\u0000${event.relation.table}`);
    // A skipped operation comes again at the commit, and is counted there.
    if (!table || (table.operations && !table.operations.includes(event.kind))) return null;
    const codec = this.codecs.readyFor(table, event.relation);
    if (!codec) return null;
    const encoder = codec.encoder;
    // index, count; per record: op (0 for a tombstone), partition, key length (-1: none), key,
    // then for a change: head length, head, trailer length, trailer. Written straight into a
    // scratch buffer (the encoder's views stay valid until then), then copied out once.
    let at = reserved + 5;
    let count = 0;
    const write = (
      op: ChangeOp | null,
      key: Buffer | null,
      partition: number,
      head?: Buffer,
      trailer?: Buffer,
    ) => {
      const size = 9 + (key?.length ?? 0) + (op ? 8 + head!.length + trailer!.length : 0);
      if (at + size > this.scratch.length) {
        const grown = Buffer.allocUnsafe(Math.max(2 * this.scratch.length, at + size));
        this.scratch.copy(grown, 0, 0, at);
        this.scratch = grown;
      }
      const out = this.scratch;
      out[at++] = op ? op.charCodeAt(0) : 0;
      at = out.writeUInt32BE(partition, at);
      at = out.writeInt32BE(key ? key.length : -1, at);
      if (key) at += key.copy(out, at);
      if (op) {
        at = out.writeUInt32BE(head!.length, at);
        at += head!.copy(out, at);
        at = out.writeUInt32BE(trailer!.length, at);
        at += trailer!.copy(out, at);
      }
      count++;
    };
    try {
      this.rowRecords(
        event,
        table,
        (op, before, after, unchanged) => encoder.prepare(op, before, after, unchanged),
        (r, key, partition) =>
          r ? write(r.op, key, partition, r.head, r.trailer) : write(null, key, partition),
      );
    } catch {
      return null;
    }
    this.preparedChanges++;
    let index = this.preparedIndex.get(encoder);
    if (index === undefined) {
      index = this.prepared.length;
      this.prepared.push({ table, encoder });
      this.preparedIndex.set(encoder, index);
    }
    this.scratch.writeUInt32BE(index, reserved);
    this.scratch[reserved + 4] = count;
    const out = Buffer.allocUnsafe(at);
    this.scratch.copy(out, reserved, reserved, at);
    return out;
  }

  /** Where `prepare` writes a change's records before they are copied out. */
  private scratch = Buffer.allocUnsafe(64 * 1024);

  /** The records of a prepared change (see `prepare`), finished at their place in the stream. */
  private replayPrepared(data: Buffer, lsn: Lsn, xid: number): void {
    const { table, encoder } = this.prepared[data.readUInt32BE(0)];
    this.counted(table);
    const meta = this.meta(lsn, xid);
    const count = data[4];
    let at = 5;
    for (let i = 0; i < count; i++) {
      const op = data[at];
      const partition = data.readUInt32BE(at + 1);
      const keyLength = data.readInt32BE(at + 5);
      at += 9;
      const key = keyLength < 0 ? null : data.subarray(at, (at += keyLength));
      if (!op) {
        this.push(table.topic, key, null, partition);
        continue;
      }
      const head = at + 4;
      const headEnd = head + data.readUInt32BE(at);
      const trailer = headEnd + 4;
      at = trailer + data.readUInt32BE(headEnd);
      const value = encoder.finish(
        data,
        head,
        headEnd,
        String.fromCharCode(op) as ChangeOp,
        trailer,
        at,
        meta,
      );
      this.push(table.topic, key, value, partition);
    }
  }

  /** A change of the heartbeat table becomes a record of the heartbeat topic; true when it was one. */
  private heartbeat(event: { kind: string; relation: RelationInfo }): boolean {
    const beat = this.opts.heartbeat;
    if (!beat || !isHeartbeatTable(beat.task, event.relation.schema, event.relation.table)) return false;
    if (event.kind !== 'delete') {
      const r = beat.records.encode(this.tx?.commitTimeMs ?? Date.now());
      // No stream position: the beat's transaction has no BEGIN or END and no table changes.
      this.chain.add(beat.topic, 0, r.key, r.value, null);
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
    this.chain.tableTopics.add(added.topic);
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
    if (this.skipsDdl(event)) {
      this.skipped.ddl++;
      return;
    }
    if (this.opts.wholeTransactions && this.tx?.counts)
      throw new DataError(
        `schema change ${JSON.stringify(event.command)} follows row changes in the same source transaction (xid ${this.tx.xid}); with options.consistency transactional each source transaction is applied whole, and a schema change can only be applied between transactions. Set options.consistency to per-key and run migrate again to carry it, and run schema changes in transactions of their own`,
      );
    await this.chain.drain();
    await this.opts.ddl!.apply(event, new Map(this.chain.ends));
  }

  /** Counts a change of `table` in the open transaction; the first one is preceded by BEGIN. */
  private counted(table: PublishedTable): void {
    const tx = this.tx;
    const txs = this.opts.transactions;
    if (!tx || !txs) return;
    if (!tx.counts) {
      tx.counts = new Map();
      const r = txs.records.encode('BEGIN', tx.id, tx.commitTimeMs);
      this.push(txs.topic, r.key, r.value, 0);
    }
    tx.counts.set(table, (tx.counts.get(table) ?? 0) + 1);
  }

  /**
   * The ChangeMeta of the next change: one object, rewritten for each change (the encoders read
   * it and keep nothing of it), not two objects per record of a million-row transaction.
   */
  private meta(lsn: Lsn, xid: number): ChangeMeta {
    const order = this.tx ? ++this.tx.order : 0;
    const m = this.metaScratch;
    m.lsn = lsn;
    m.txId = xid;
    m.tsMs = this.tx ? this.tx.commitTimeMs : Date.now();
    // One id for every change of the transaction: its xid and its commit LSN.
    m.transaction.id = this.tx?.id ?? transactionId(xid, lsn);
    m.transaction.totalOrder = order;
    m.transaction.dataCollectionOrder = order;
    return m;
  }

  private readonly metaScratch = {
    lsn: 0n,
    txId: 0 as number | null,
    tsMs: 0,
    transaction: { id: '', totalOrder: 0, dataCollectionOrder: 0 },
  } satisfies ChangeMeta;

  /** Buffers a record; inside a transaction with its stream position (header pgferry.pos). */
  private push(topic: string, key: Buffer | null, value: Buffer | null, partition: number): void {
    const tx = this.tx;
    if (!tx) return this.chain.add(topic, partition, key, value, null);
    // One header buffer, rewritten for each record (its LSN at BEGIN): the chain copies it in.
    this.position.value.writeUInt32BE(++tx.seq >>> 0, 8);
    this.chain.add(topic, partition, key, value, this.position);
  }
}
