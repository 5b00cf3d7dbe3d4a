import type { Client } from 'pg';
import { classifyPgError } from '@pgferry/pg';

/**
 * What the controller decided for the incremental phase's processes, recorded in the
 * destination (pgferry.stream_settings) so that captures and appliers running elsewhere
 * (`pgferry capture`, `pgferry applier`) stream and apply exactly what it would have run
 * itself. No secrets: each process brings its own endpoints and Kafka addresses in its spec.
 */
export interface RecordedStreamSettings {
  topicPrefix: string;
  partitions: number;
  /** The selection as the controller resolved it (SelectedTable[]). */
  tables: unknown[];
  /** The change appliers' consumer group and where each topic's rows go (ApplierTarget[]). */
  group: string;
  targets: unknown[];
}

export async function writeStreamSettings(
  client: Pick<Client, 'query'>,
  task: string,
  settings: RecordedStreamSettings,
): Promise<void> {
  try {
    await client.query(
      `INSERT INTO pgferry.stream_settings (task, settings) VALUES ($1, $2)
       ON CONFLICT (task) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()`,
      [task, JSON.stringify(settings)],
    );
  } catch (err) {
    throw classifyPgError(err, `recording the stream settings of task ${task} on the destination`);
  }
}

/** The recorded settings, or null before the controller started the incremental phase. */
export async function readStreamSettings(
  client: Pick<Client, 'query'>,
  task: string,
): Promise<RecordedStreamSettings | null> {
  const { rows } = await client.query(`SELECT settings FROM pgferry.stream_settings WHERE task = $1`, [task]);
  return rows.length ? (rows[0].settings as RecordedStreamSettings) : null;
}
