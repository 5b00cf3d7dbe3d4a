import type { Queryable } from './control-schema';

/**
 * A table the stream gained after the task started (created on the source in a schema the task
 * takes whole, or a streamed table renamed there): its topic and key, for the appliers, which
 * follow this list, and for cutover.
 */
export interface StreamTable {
  topic: string;
  schema: string;
  table: string;
  key: string[];
}

/** Records a table the stream now carries (idempotent: a restarted capture records it again). */
export async function addStreamTable(client: Queryable, task: string, t: StreamTable): Promise<void> {
  await client.query(
    `INSERT INTO pgferry.stream_tables (task, topic, schema_name, table_name, key_columns) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (task, topic) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name, key_columns = EXCLUDED.key_columns`,
    [task, t.topic, t.schema, t.table, t.key],
  );
}

/** The tables the stream gained since the task started, in the order they came. */
export async function readStreamTables(client: Queryable, task: string): Promise<StreamTable[]> {
  const { rows } = await client.query<StreamTable>(
    `SELECT topic, schema_name AS schema, table_name AS table, key_columns AS key FROM pgferry.stream_tables
      WHERE task = $1 ORDER BY added_at, topic`,
    [task],
  );
  return rows;
}
