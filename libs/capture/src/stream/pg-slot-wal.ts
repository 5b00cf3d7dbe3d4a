import type { Client } from 'pg';
import { ObjectError } from '@pgferry/core';
import { classifyPgError, parseLsn, quoteLiteral, type Lsn } from '@pgferry/pg';
import type { SlotWal } from '@pgferry/control';

/** The source's WAL position and what the task's slot holds back of it. */
export interface SourceWal {
  currentLsn: Lsn;
  /** Null when the slot does not exist. */
  slot: SlotWal | null;
}

/**
 * Reads the source's WAL position and the slot's retention from pg_replication_slots: the WAL
 * between its restart_lsn and the current position, which the source keeps on disk for it;
 * wal_status and safe_wal_size (PostgreSQL 13 and later; null before) and
 * max_slot_wal_keep_size, the bound past which the source invalidates the slot (wal_status
 * 'lost') rather than fill its disk. Read-only.
 */
export async function readSourceWal(client: Client, slot: string): Promise<SourceWal> {
  try {
    const { rows: v } = await client.query<{ n: number }>(
      `SELECT current_setting('server_version_num')::int AS n`,
    );
    const v13 = v[0].n >= 130000;
    const { rows } = await client.query<{
      lsn: string;
      found: boolean;
      retained: string | null;
      wal_status: string | null;
      safe: string | null;
      keep: string | null;
    }>(
      `SELECT pg_current_wal_lsn()::text AS lsn, s.slot_name IS NOT NULL AS found,
              pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint::text AS retained,
              ${v13 ? 's.wal_status' : 'NULL::text'} AS wal_status,
              ${v13 ? 's.safe_wal_size::text' : 'NULL::text'} AS safe,
              ${v13 ? `(SELECT CASE WHEN setting::bigint < 0 THEN NULL ELSE setting::bigint * 1048576 END FROM pg_settings WHERE name = 'max_slot_wal_keep_size')::text` : 'NULL::text'} AS keep
         FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`,
      [slot],
    );
    const r = rows[0];
    return {
      currentLsn: parseLsn(r.lsn),
      slot: r.found
        ? {
            retainedBytes: r.retained === null ? null : Number(r.retained),
            walStatus: r.wal_status,
            safeWalSizeBytes: r.safe === null ? null : Number(r.safe),
            maxSlotWalKeepSizeBytes: r.keep === null ? null : Number(r.keep),
          }
        : null,
    };
  } catch (err) {
    throw classifyPgError(err, `reading the WAL position and replication slot ${slot} of the source`);
  }
}

/**
 * The source invalidated the task's slot (wal_status 'lost': it had to remove WAL the slot still
 * needed, past max_slot_wal_keep_size). The changes in that WAL are gone, so the stream can never
 * go on; the task must start over with a new slot and a new full load.
 */
export class SlotInvalidatedError extends ObjectError {
  constructor(task: string, slot: string, keepBytes: number | null) {
    super(
      `replication slot ${slot} of task ${task} was invalidated by the source (wal_status lost): it removed WAL the slot still needed${keepBytes === null ? '' : `, past max_slot_wal_keep_size (${Math.round(keepBytes / 1048576)} MB)`}, so the changes since the destination's position are gone and the stream cannot go on. ` +
        `Start over: pgferry release (drops the slot and the task's objects on the source), then on the destination DELETE FROM pgferry.tasks WHERE task = ${quoteLiteral(task)} and drop the task's tables, raise max_slot_wal_keep_size (or keep the capture running) and run pgferry migrate again`,
      { code: 'SLOT_INVALIDATED' },
    );
  }
}
