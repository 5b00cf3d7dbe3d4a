import type { Client } from 'pg';
import { classifyPgError, connect, describeEndpoint, quoteIdent, type Endpoint } from '@pgferry/pg';
import { ObjectError } from '@pgferry/core';

export interface ExportedSnapshot {
  slotName: string;
  /** The LSN from which the slot streams: every change after the snapshot. */
  consistentLsn: string;
  /** Importable with SET TRANSACTION SNAPSHOT while `connection` stays open and idle. */
  snapshotName: string;
  /** The replication connection that exported the snapshot; close it when every chunk is read. */
  connection: Client;
}

/**
 * Creates the task's logical slot (pgoutput) on a replication connection and exports its
 * snapshot: rows read under that snapshot plus the changes the slot streams after
 * `consistentLsn` are exactly the source's history, with nothing missed or seen twice.
 * Fails with ObjectError when the slot exists already (a resumed task reuses it instead).
 * `temporary` (a full-only task, which streams nothing): the slot exists only as long as
 * `connection`, so it holds WAL no longer than the snapshot is needed, and a task that fails or
 * is killed leaves none behind.
 */
export async function createSlotWithSnapshot(
  ep: Endpoint,
  slotName: string,
  options: { temporary?: boolean } = {},
): Promise<ExportedSnapshot> {
  const context = `creating replication slot ${slotName} on source ${describeEndpoint(ep)}`;
  const conn = await connect(ep, 'source', {
    applicationName: `pgferry ${slotName}`,
    replication: 'database',
  });
  try {
    // EXPORT_SNAPSHOT is the spelling every server from 10 up accepts.
    const { rows } = await conn.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slotName)}${options.temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    return {
      slotName: rows[0].slot_name,
      consistentLsn: rows[0].consistent_point,
      snapshotName: rows[0].snapshot_name,
      connection: conn,
    };
  } catch (err) {
    await conn.end().catch(() => undefined);
    const e = err as { code?: string };
    if (e.code === '42710')
      throw new ObjectError(
        `${context}: the slot already exists; drop it with SELECT pg_drop_replication_slot('${slotName}') or resume the task that owns it`,
        { cause: err },
      );
    throw classifyPgError(err, context);
  }
}

/** Drops the slot if it exists. Idempotent. */
export async function dropSlot(client: Client, slotName: string): Promise<boolean> {
  try {
    const { rows } = await client.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`,
      [slotName],
    );
    return rows.length > 0;
  } catch (err) {
    throw classifyPgError(err, `dropping replication slot ${slotName}`);
  }
}
