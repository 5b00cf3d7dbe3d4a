import type { Client } from 'pg';
import { classifyPgError } from '@pgferry/pg';
import type { DatabaseFacts } from './precheck-facts';

/**
 * Reads the facts of one side's database. Read-only: catalog queries and has_*_privilege
 * functions only; values go as bind parameters. `context` names the server in errors.
 */
export async function readDatabaseFacts(client: Client, context: string): Promise<DatabaseFacts> {
  try {
    const { rows } = await client.query(`
      SELECT d.datname AS database, d.oid::int8 AS oid,
             pg_postmaster_start_time()::text AS started_at, current_setting('port') AS port,
             CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                  THEN (SELECT system_identifier::text FROM pg_control_system()) END AS system_identifier,
             pg_encoding_to_char(d.encoding) AS encoding,
             current_setting('max_identifier_length')::int AS max_identifier_length,
             pg_is_in_recovery() AS in_recovery,
             has_database_privilege(d.oid, 'CONNECT') AS can_connect,
             has_database_privilege(d.oid, 'CREATE') AS can_create,
             has_database_privilege(d.oid, 'TEMPORARY') AS can_temp
        FROM pg_database d WHERE d.datname = current_database()`);
    const r = rows[0];
    return {
      database: r.database,
      databaseOid: Number(r.oid),
      startedAt: r.started_at,
      port: r.port,
      systemIdentifier: r.system_identifier,
      encoding: r.encoding,
      maxIdentifierLength: r.max_identifier_length,
      inRecovery: r.in_recovery,
      canConnect: r.can_connect,
      canCreate: r.can_create,
      canTemp: r.can_temp,
    };
  } catch (err) {
    throw classifyPgError(err, context);
  }
}
