import type { Lsn } from '@pgferry/pg';

/**
 * The one internal event type of the streaming capture (STYLE item 3). Built from pgoutput
 * messages by the decoder; Avro exists only after the encoder. Every event of a transaction sits
 * between its `begin` and its `commit`, in the source's commit order; an aborted transaction
 * (streamed or not) never produces events.
 */

/**
 * Marks a TOASTed column an UPDATE (or DELETE under identity full) did not change: pgoutput sends
 * 'u' and no value. It is not NULL and must never be written as NULL or as a placeholder: the
 * destination keeps its current value.
 */
export const UNCHANGED_TOAST: unique symbol = Symbol.for('pgferry.unchanged-toast');
export type UnchangedToast = typeof UNCHANGED_TOAST;

/** A column value in PostgreSQL's text form (pgoutput 't'), SQL NULL ('n'), or unchanged ('u'). */
export type ColumnValue = string | null | UnchangedToast;

/** Values in the relation's column order (`RelationInfo.columns`). */
export type RowImage = ColumnValue[];

export type ReplicaIdentity = 'default' | 'nothing' | 'full' | 'index';

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** atttypmod, -1 when the type has none. */
  typeMod: number;
  /** format_type of the OID (e.g. 'character varying', 'public.mood'); null if unknown. */
  typeName: string | null;
  /** Part of the replica identity key (pgoutput column flag 1). */
  key: boolean;
}

/** A table as pgoutput described it last (its Relation message). Immutable; replaced on change. */
export interface RelationInfo {
  oid: number;
  schema: string;
  table: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

interface DataEventBase {
  relation: RelationInfo;
  /** Position of the change in the WAL. */
  lsn: Lsn;
  /** Top-level transaction id. */
  xid: number;
}

export interface InsertEvent extends DataEventBase {
  kind: 'insert';
  new: RowImage;
}

/**
 * `old` is present when the source logged an old row: `oldKind` 'key' (default or index
 * identity and the key changed: only key columns are real, the others are null) or 'full'
 * (REPLICA IDENTITY FULL: every column; TOASTed ones may still be unchanged markers).
 */
export interface UpdateEvent extends DataEventBase {
  kind: 'update';
  old?: RowImage;
  oldKind?: 'key' | 'full';
  new: RowImage;
}

export interface DeleteEvent extends DataEventBase {
  kind: 'delete';
  old: RowImage;
  oldKind: 'key' | 'full';
}

export interface TruncateEvent {
  kind: 'truncate';
  relations: RelationInfo[];
  cascade: boolean;
  restartIdentity: boolean;
  lsn: Lsn;
  xid: number;
}

export interface BeginEvent {
  kind: 'begin';
  xid: number;
  /** LSN of the commit record: the transaction's position in commit order. */
  finalLsn: Lsn;
  commitTime: Date;
}

export interface TableEventCount {
  schema: string;
  table: string;
  /** Inserts, updates, deletes and truncates of the table in the transaction. */
  events: number;
}

/**
 * End of a committed transaction. `endLsn` is what to `confirm` once every event of this and
 * earlier transactions is safely stored: a restart from it re-delivers nothing of them.
 */
export interface CommitEvent {
  kind: 'commit';
  xid: number;
  lsn: Lsn;
  endLsn: Lsn;
  commitTime: Date;
  counts: TableEventCount[];
}

/**
 * The server has sent everything up to `lsn` and no transaction is open in the stream: once
 * every earlier event is stored, confirming `lsn` is safe and lets an idle slot advance.
 */
export interface KeepaliveEvent {
  kind: 'keepalive';
  lsn: Lsn;
}

/** A table's (new) description; data events carry it too. Sent before its first use. */
export interface RelationEvent {
  kind: 'relation';
  relation: RelationInfo;
}

export type DataEvent = InsertEvent | UpdateEvent | DeleteEvent;

/**
 * A row change of a streamed transaction that the processor encoded while the transaction was
 * still open (ChangeProcessor.prepare), replayed at its commit in its place: `data` is what
 * `prepare` returned, after the bytes it reserved.
 */
export interface PreparedEvent {
  kind: 'prepared';
  relation: RelationInfo;
  lsn: Lsn;
  xid: number;
  data: Buffer;
}

export type ChangeEvent =
  BeginEvent | DataEvent | PreparedEvent | TruncateEvent | CommitEvent | KeepaliveEvent | RelationEvent;

/**
 * A row image as the change encoder takes it: text values (null for NULL and for unchanged
 * columns) and the names of the unchanged TOAST columns, which must be marked, not written.
 */
export function splitUnchanged(
  relation: RelationInfo,
  row: readonly ColumnValue[],
): { texts: Array<string | null>; unchanged: string[] } {
  const texts: Array<string | null> = [];
  const unchanged: string[] = [];
  row.forEach((v, i) => {
    if (v === UNCHANGED_TOAST) {
      texts.push(null);
      unchanged.push(relation.columns[i].name);
    } else texts.push(v);
  });
  return { texts, unchanged };
}
