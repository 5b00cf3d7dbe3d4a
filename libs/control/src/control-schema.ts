import type { Client, PoolClient } from 'pg';
import { classifyPgError } from '@pgferry/pg';

/**
 * The control schema `pgferry` in the destination: phase state per task, snapshot chunk
 * progress, and the applier's consumed Kafka offsets. Offsets are written in the same
 * transaction as the rows they cover, so a restarted applier resumes exactly where the last
 * committed transaction ended. The DDL is idempotent (IF NOT EXISTS).
 */
export const CONTROL_SCHEMA = 'pgferry';

export const CONTROL_DDL = `
CREATE SCHEMA IF NOT EXISTS pgferry;
CREATE TABLE IF NOT EXISTS pgferry.tasks (
  task text PRIMARY KEY,
  spec jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  slot_name text,
  consistent_lsn pg_lsn,
  snapshot_name text
);
CREATE TABLE IF NOT EXISTS pgferry.phases (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  phase text NOT NULL,
  status text NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  detail jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (task, phase)
);
CREATE TABLE IF NOT EXISTS pgferry.chunks (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  chunk_id text NOT NULL,
  source_table text NOT NULL,
  plan jsonb NOT NULL DEFAULT '{}',
  attempt int NOT NULL DEFAULT 0,
  rows_sent bigint NOT NULL DEFAULT 0,
  bytes_sent bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  PRIMARY KEY (task, chunk_id)
);
CREATE TABLE IF NOT EXISTS pgferry.offsets (
  consumer_group text NOT NULL,
  topic text NOT NULL,
  partition int NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition)
);
CREATE TABLE IF NOT EXISTS pgferry.truncates (
  consumer_group text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  lsn bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (consumer_group, schema_name, table_name)
);
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS cutover_requested_at timestamptz;
ALTER TABLE pgferry.offsets ADD COLUMN IF NOT EXISTS stream_pos bytea;
CREATE TABLE IF NOT EXISTS pgferry.stream_marks (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  lsn pg_lsn NOT NULL,
  commit_time timestamptz NOT NULL,
  ends jsonb NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, lsn)
);
CREATE TABLE IF NOT EXISTS pgferry.ddl_applied (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  ddl_id bigint NOT NULL,
  command text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, ddl_id)
);
CREATE TABLE IF NOT EXISTS pgferry.stream_tables (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  topic text NOT NULL,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  key_columns text[] NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, topic)
);
CREATE TABLE IF NOT EXISTS pgferry.stream_status (
  task text PRIMARY KEY REFERENCES pgferry.tasks ON DELETE CASCADE,
  source_lsn pg_lsn,
  captured_lsn pg_lsn,
  capture_lag_ms bigint,
  published bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgferry.stream_settings (
  task text PRIMARY KEY REFERENCES pgferry.tasks ON DELETE CASCADE,
  settings jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgferry.leases (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  role text NOT NULL,
  holder text NOT NULL,
  expires_at timestamptz NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, role)
);
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS run_id text;
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS source_system_id text;
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS source_database text;
ALTER TABLE pgferry.tasks ADD COLUMN IF NOT EXISTS kafka_cluster_id text;
ALTER TABLE pgferry.stream_status ADD COLUMN IF NOT EXISTS slot jsonb;
ALTER TABLE pgferry.stream_status ADD COLUMN IF NOT EXISTS skipped jsonb;
CREATE TABLE IF NOT EXISTS pgferry.start_offsets (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  topic text NOT NULL,
  partition int NOT NULL,
  start_offset bigint NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, topic, partition)
);
CREATE TABLE IF NOT EXISTS pgferry.throttle (
  task text PRIMARY KEY REFERENCES pgferry.tasks ON DELETE CASCADE,
  spec_limits jsonb NOT NULL,
  limits jsonb NOT NULL,
  changed_by text NOT NULL,
  changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgferry.throttle_reports (
  task text NOT NULL REFERENCES pgferry.tasks ON DELETE CASCADE,
  process text NOT NULL,
  stage text NOT NULL,
  report jsonb NOT NULL,
  reported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task, process)
);`;

/** What the control statements run on: a client or a pool's client. */
export type Queryable = Pick<Client | PoolClient, 'query'>;

export async function ensureControlSchema(client: Queryable): Promise<void> {
  try {
    await client.query(CONTROL_DDL);
  } catch (err) {
    throw classifyPgError(err, 'creating the pgferry control schema on the destination');
  }
}
