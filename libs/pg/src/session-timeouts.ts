import type { Client } from 'pg';
import { classifyPgError } from './classify';

/**
 * Timeouts of a session that writes for pgferry (an applier's), so that neither a dead network
 * nor a dead session can hold it up for ever. Values in ms; 0 leaves the server's setting.
 */
export interface SessionTimeouts {
  /**
   * tcp_user_timeout on the server's side: data it sent that the peer has not acknowledged for
   * this long ends the connection (a silent network drop while the server writes).
   */
  tcpUserTimeoutMs: number;
  /** The server's TCP keepalive: first probe after this idle time, then every 5 s, 3 probes. */
  keepaliveIdleMs: number;
  /** A statement that runs longer is cancelled (statement_timeout). */
  statementTimeoutMs: number;
  /**
   * A session left idle inside a transaction this long is ended by the server
   * (idle_in_transaction_session_timeout): a client that died mid-transaction releases its locks.
   */
  idleInTransactionMs: number;
  /** Waiting this long for a lock fails the statement with 55P03 (retried), instead of waiting for ever. */
  lockTimeoutMs: number;
}

/** An applier's: bounds generous for a large source transaction's bulk apply. */
export const APPLIER_TIMEOUTS: SessionTimeouts = {
  tcpUserTimeoutMs: 30_000,
  keepaliveIdleMs: 10_000,
  statementTimeoutMs: 15 * 60_000,
  idleInTransactionMs: 60_000,
  lockTimeoutMs: 30_000,
};

/**
 * Sets `t` on the session for the connection's life. Settings the server does not have
 * (tcp_user_timeout before PostgreSQL 12) are left out.
 */
export async function setSessionTimeouts(client: Client, t: SessionTimeouts): Promise<void> {
  const ms = (v: number) => String(Math.max(0, Math.round(v)));
  const settings: Record<string, string> = {
    tcp_user_timeout: ms(t.tcpUserTimeoutMs),
    tcp_keepalives_idle: String(Math.max(1, Math.round(t.keepaliveIdleMs / 1000))),
    tcp_keepalives_interval: '5',
    tcp_keepalives_count: '3',
    statement_timeout: ms(t.statementTimeoutMs),
    idle_in_transaction_session_timeout: ms(t.idleInTransactionMs),
    lock_timeout: ms(t.lockTimeoutMs),
  };
  try {
    await client.query(
      `SELECT set_config(s.name, v.value, false) FROM pg_settings s
         JOIN unnest($1::text[], $2::text[]) AS v(name, value) ON v.name = s.name`,
      [Object.keys(settings), Object.values(settings)],
    );
  } catch (err) {
    throw classifyPgError(err, 'setting the session timeouts');
  }
}

/**
 * Ends the sessions of `applicationName` on this database that a dead client left behind: idle
 * inside a transaction, or blocked writing to a client that stopped reading, for longer than
 * `staleMs`. A live pgferry session never stays so (it commits within a batch), but one whose
 * client vanished holds its row locks until the server notices, and would block the client
 * that replaced it. Needs the same role as those sessions (or pg_signal_backend); when the server
 * refuses, nothing is ended and the server's own timeouts end them later. Returns how many.
 */
export async function endStaleSessions(
  client: Client,
  applicationName: string,
  staleMs: number,
): Promise<number> {
  try {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
          AND (state IN ('idle in transaction', 'idle in transaction (aborted)') OR wait_event = 'ClientWrite')
          AND state_change < now() - make_interval(secs => $2)`,
      [applicationName, staleMs / 1000],
    );
    return rows[0].n;
  } catch {
    return 0;
  }
}
