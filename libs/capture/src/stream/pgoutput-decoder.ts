import type { ChangeEvent, DataEvent, RelationInfo, TableEventCount } from '../change-event';
import { formatLsn, type Lsn } from '@pgferry/pg';
import { parsePgoutput, PgoutputFormatError, streamedXid, type PgoutputMessage } from './pgoutput-parser';
import { SpoolArea, TransactionSpool, type SpoolOptions } from './stream-spool';

export type Emit = (event: ChangeEvent) => Promise<void> | undefined;
/** ChangeProcessor.prepare: a streamed row change encoded before its commit, or null. */
export type Prepare = (event: DataEvent, reserved: number) => Buffer | null;

/** A spooled entry that holds a prepared change, not a pgoutput message (those start with a letter). */
const PREPARED = 0x00;
/** Tag and relation OID before the prepared bytes. */
const PREPARED_HEADER = 5;

interface OpenTransaction {
  xid: number;
  counts: Map<number, TableEventCount>;
}

/**
 * Turns pgoutput messages, in the order the server sent them, into ChangeEvents.
 *
 * - Ordinary transactions (BEGIN ... COMMIT) pass straight through: the server sends only
 *   committed ones, in commit order.
 * - Streamed transactions (protocol 2: Stream Start / Stop blocks, then Stream Commit or Stream
 *   Abort) are held in a bounded spool (see stream-spool.ts) and replayed at Stream Commit as
 *   begin ... commit, exactly where their commit sits in the stream. Stream Abort of the whole
 *   transaction discards it; of a subtransaction, cuts out what that subtransaction wrote.
 *   Relation and type messages inside a streamed block belong to the transaction (as in
 *   PostgreSQL's own subscriber): they take effect when it is replayed, never if it aborts.
 * - With a `prepare` function (the publisher's), a streamed row change is encoded as it arrives
 *   and spooled encoded, so a large transaction's encoding overlaps its execution on the source
 *   instead of following its commit; the commit replays it as a `prepared` event. Changes
 *   `prepare` declines (a table it cannot encode yet) are spooled as they came.
 *
 * Not thread-safe and not re-entrant: call `decode` for one message at a time, awaiting each.
 */
/** A format error with the LSN of its message (a replayed message's error names its transaction instead). */
function located(err: unknown, lsn: Lsn): unknown {
  if (err instanceof PgoutputFormatError && !err.message.includes(' (replaying streamed transaction '))
    err.message += ` (the message at ${formatLsn(lsn)})`;
  return err;
}

export class PgoutputDecoder {
  private readonly relations = new Map<number, RelationInfo>();
  /** Latest description seen inside any streamed block: used only if a replay lacks one. */
  private readonly streamedRelations = new Map<number, RelationInfo>();
  private readonly area: SpoolArea;
  private readonly spools = new Map<number, TransactionSpool>();
  private current: OpenTransaction | null = null;
  private streamXid: number | null = null;
  /**
   * Per open streamed transaction, the Relation messages it carried (its changes match those),
   * or null once a subtransaction of it aborted: which descriptions hold after that is not
   * tracked, so its later changes are spooled unprepared.
   */
  private readonly streamedShapes = new Map<number, Map<number, RelationInfo> | null>();

  constructor(
    spool: SpoolOptions,
    private readonly typeNames: Map<number, string> = new Map(),
  ) {
    this.area = new SpoolArea(spool);
  }

  /** True between BEGIN and COMMIT of an ordinary transaction, or inside a streamed block. */
  get inTransaction(): boolean {
    return this.current !== null || this.streamXid !== null;
  }

  /** Bytes of streamed transactions held in memory now (the rest is on disk). */
  get spooledBytesInMemory(): number {
    return this.area.used;
  }

  /** Streamed transactions begun and not yet committed or aborted. */
  get openStreamedTransactions(): number {
    return this.spools.size;
  }

  /**
   * `data` must be the caller's own copy: streamed messages are kept until their commit. A
   * message that breaks the format is a PgoutputFormatError naming its LSN. A message of an
   * open streamed transaction that only joins its spool in memory is taken without a promise
   * (undefined is returned); await anything else.
   */
  decode(lsn: Lsn, data: Buffer, emit: Emit, prepare?: Prepare): Promise<void> | undefined {
    try {
      return this.decodeAt(lsn, data, emit, prepare)?.catch((err: unknown) => {
        throw located(err, lsn);
      });
    } catch (err) {
      throw located(err, lsn);
    }
  }

  private decodeAt(lsn: Lsn, data: Buffer, emit: Emit, prepare?: Prepare): Promise<void> | undefined {
    const xid = this.streamXid;
    if (xid !== null) {
      const subxid = streamedXid(data);
      if (subxid !== undefined) {
        const tag = data[0];
        if (tag === 0x52 /* 'R' */) {
          const m = parsePgoutput(data, true);
          if (m.tag === 'relation') {
            const info = this.relationInfo(m);
            this.streamedRelations.set(m.oid, info);
            this.streamedShapes.get(xid)?.set(m.oid, info);
          }
        } else if (prepare && (tag === 0x49 || tag === 0x55 || tag === 0x44) /* I, U, D */) {
          const entry = this.prepared(xid, lsn, data, prepare);
          if (entry) data = entry;
        }
        return this.spoolOf(xid).append(subxid, lsn, data);
      }
    }
    return this.handle(parsePgoutput(data, false), lsn, emit);
  }

  /** A streamed row change as `prepare` encodes it, behind its spool tag and relation, or null. */
  private prepared(xid: number, lsn: Lsn, data: Buffer, prepare: Prepare): Buffer | null {
    const shapes = this.streamedShapes.get(xid);
    if (shapes === null) return null;
    const m = parsePgoutput(data, true);
    if (m.tag !== 'insert' && m.tag !== 'update' && m.tag !== 'delete') return null;
    const relation = shapes?.get(m.relationOid) ?? this.relations.get(m.relationOid);
    if (!relation) return null;
    const entry = prepare(dataEvent(m, relation, lsn, xid), PREPARED_HEADER);
    if (!entry) return null;
    entry[0] = PREPARED;
    entry.writeUInt32BE(m.relationOid, 1);
    return entry;
  }

  private spoolOf(xid: number): TransactionSpool {
    let s = this.spools.get(xid);
    if (!s) {
      s = new TransactionSpool(xid, this.area);
      this.spools.set(xid, s);
      this.streamedShapes.set(xid, new Map());
    }
    return s;
  }

  private relationInfo(m: Extract<PgoutputMessage, { tag: 'relation' }>): RelationInfo {
    return {
      oid: m.oid,
      schema: m.schema,
      table: m.table,
      replicaIdentity: m.replicaIdentity,
      columns: m.columns.map((c) => ({
        name: c.name,
        typeOid: c.typeOid,
        typeMod: c.typeMod,
        typeName: this.typeNames.get(c.typeOid) ?? null,
        key: (c.flags & 1) !== 0,
      })),
    };
  }

  private relation(oid: number, replaying: boolean): RelationInfo {
    const r = this.relations.get(oid) ?? (replaying ? this.streamedRelations.get(oid) : undefined);
    if (!r) throw new PgoutputFormatError(`change for relation ${oid} before its Relation message`);
    return r;
  }

  private count(t: OpenTransaction, r: RelationInfo): void {
    const c = t.counts.get(r.oid);
    if (c) c.events++;
    else t.counts.set(r.oid, { schema: r.schema, table: r.table, events: 1 });
  }

  private inside(what: string): OpenTransaction {
    if (!this.current) throw new PgoutputFormatError(`${what.toUpperCase()} outside a transaction`);
    return this.current;
  }

  /** Not async: what `emit` takes without a promise is handled without one (see decode). */
  private handle(m: PgoutputMessage, lsn: Lsn, emit: Emit, replaying = false): Promise<void> | undefined {
    switch (m.tag) {
      case 'begin':
        if (this.current)
          throw new PgoutputFormatError(`BEGIN of ${m.xid} inside transaction ${this.current.xid}`);
        this.current = { xid: m.xid, counts: new Map() };
        return emit({ kind: 'begin', xid: m.xid, finalLsn: m.finalLsn, commitTime: m.commitTime });
      case 'commit': {
        const t = this.inside('COMMIT');
        this.current = null;
        return emit({
          kind: 'commit',
          xid: t.xid,
          lsn: m.lsn,
          endLsn: m.endLsn,
          commitTime: m.commitTime,
          counts: [...t.counts.values()],
        });
      }
      case 'relation': {
        const relation = this.relationInfo(m);
        this.relations.set(m.oid, relation);
        return emit({ kind: 'relation', relation });
      }
      case 'type':
        if (!this.typeNames.has(m.oid)) this.typeNames.set(m.oid, `${m.schema}.${m.name}`);
        return;
      case 'insert':
      case 'update':
      case 'delete': {
        const t = this.inside(m.tag);
        const relation = this.relation(m.relationOid, replaying);
        this.count(t, relation);
        return emit(dataEvent(m, relation, lsn, t.xid));
      }
      case 'truncate': {
        const t = this.inside('TRUNCATE');
        const relations = m.relationOids.map((oid) => this.relation(oid, replaying));
        for (const r of relations) this.count(t, r);
        return emit({
          kind: 'truncate',
          relations,
          cascade: m.cascade,
          restartIdentity: m.restartIdentity,
          lsn,
          xid: t.xid,
        });
      }
      case 'origin':
      case 'message':
        // Origins only appear for changes replicated into the source; messages are not requested.
        return;
      case 'streamStart':
        if (this.streamXid !== null || this.current)
          throw new PgoutputFormatError(`Stream Start of ${m.xid} inside another transaction`);
        this.streamXid = m.xid;
        this.spoolOf(m.xid);
        return;
      case 'streamStop':
        if (this.streamXid === null) throw new PgoutputFormatError('Stream Stop without Stream Start');
        this.streamXid = null;
        return;
      case 'streamAbort': {
        const spool = this.spools.get(m.xid);
        if (!spool) return;
        if (m.subxid === m.xid) {
          this.spools.delete(m.xid);
          this.streamedShapes.delete(m.xid);
          return spool.discard();
        }
        this.streamedShapes.set(m.xid, null);
        return spool.abortSubtransaction(m.subxid);
      }
      case 'streamCommit':
        return this.replay(m, emit);
    }
  }

  private async replay(m: Extract<PgoutputMessage, { tag: 'streamCommit' }>, emit: Emit): Promise<void> {
    if (this.current || this.streamXid !== null)
      throw new PgoutputFormatError(`Stream Commit of ${m.xid} inside another transaction`);
    const spool = this.spools.get(m.xid);
    this.spools.delete(m.xid);
    this.streamedShapes.delete(m.xid);
    try {
      await this.handle({ tag: 'begin', xid: m.xid, finalLsn: m.lsn, commitTime: m.commitTime }, m.lsn, emit);
      if (spool)
        for await (const batch of spool.replay())
          for (const s of batch) {
            if (s.data[0] === PREPARED) {
              const t = this.inside('prepared change');
              const relation = this.relation(s.data.readUInt32BE(1), true);
              this.count(t, relation);
              // The publisher takes most prepared changes without a promise.
              const taken = emit({
                kind: 'prepared',
                relation,
                lsn: s.lsn,
                xid: t.xid,
                data: s.data.subarray(PREPARED_HEADER),
              });
              if (taken) await taken;
              continue;
            }
            const msg = parsePgoutput(s.data, true);
            if (msg.tag === 'relation' || msg.tag === 'type') await this.handle(msg, s.lsn, emit);
            else await this.handle(msg, s.lsn, emit, true);
          }
      await this.handle(
        { tag: 'commit', flags: m.flags, lsn: m.lsn, endLsn: m.endLsn, commitTime: m.commitTime },
        m.endLsn,
        emit,
      );
    } catch (err) {
      if (err instanceof PgoutputFormatError)
        err.message += ` (replaying streamed transaction ${m.xid} committed at ${formatLsn(m.lsn)})`;
      throw err;
    } finally {
      await spool?.discard();
    }
  }

  /** Drops every held transaction and its spill files. Idempotent. */
  async close(): Promise<void> {
    const spools = [...this.spools.values()];
    this.spools.clear();
    this.streamedShapes.clear();
    this.current = null;
    this.streamXid = null;
    for (const s of spools) await s.discard();
    await this.area.close();
  }
}

type RowMessage = Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>;

/** The change event of a row message of `relation`. */
function dataEvent(m: RowMessage, relation: RelationInfo, lsn: Lsn, xid: number): DataEvent {
  switch (m.tag) {
    case 'insert':
      return { kind: 'insert', relation, new: m.new, lsn, xid };
    case 'update':
      return m.old
        ? { kind: 'update', relation, old: m.old, oldKind: m.oldKind, new: m.new, lsn, xid }
        : { kind: 'update', relation, new: m.new, lsn, xid };
    case 'delete':
      return { kind: 'delete', relation, old: m.old, oldKind: m.oldKind, lsn, xid };
  }
}
